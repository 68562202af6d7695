// A value that lacks serde's derives, returned plain and inside the wrappers the macro sees
// through: one error per function, on `ArticleView`.
use std::sync::Arc;

pub struct ArticleView {
    pub title: String,
}

#[cache_runtime::cache(namespace = "articles")]
async fn plain(id: u64) -> ArticleView {
    ArticleView { title: id.to_string() }
}

#[cache_runtime::cache(namespace = "articles")]
async fn maybe(id: u64) -> Option<ArticleView> {
    let _ = id;
    None
}

#[cache_runtime::cache(namespace = "articles")]
async fn list(id: u64) -> Vec<ArticleView> {
    let _ = id;
    Vec::new()
}

#[cache_runtime::cache(namespace = "articles")]
async fn shared(id: u64) -> Result<Arc<ArticleView>, std::io::Error> {
    Ok(Arc::new(ArticleView { title: id.to_string() }))
}

#[cache_runtime::cache(namespace = "articles")]
async fn pair(id: u64) -> (u64, Box<ArticleView>) {
    (id, Box::new(ArticleView { title: id.to_string() }))
}

fn main() {}
