// The case: the value inside `Result<Option<_>, _>` lacks serde's derives. One error,
// on `ArticleView`, saying what to derive.
pub struct ArticleView {
    pub title: String,
}

pub struct AppError;

#[cache_runtime::cache(namespace = "articles")]
async fn article(id: u64) -> Result<Option<ArticleView>, AppError> {
    let _ = id;
    Ok(None)
}

fn main() {}
