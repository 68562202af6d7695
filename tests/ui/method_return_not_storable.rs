// Methods whose return value lacks serde's derives: one error per method, on `ArticleView`.
use cache_runtime::cache;

pub struct ArticleView {
    pub title: String,
}

pub struct AppError;

pub struct Repo;

impl Repo {
    #[cache(namespace = "articles", skip = [self])]
    async fn find(&self, id: u64) -> Result<Option<ArticleView>, AppError> {
        let _ = id;
        Ok(None)
    }

    #[cache(namespace = "articles", skip = [self])]
    async fn get(&self, id: u64) -> ArticleView {
        ArticleView { title: id.to_string() }
    }
}

fn main() {}
