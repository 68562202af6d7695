// Handlers whose response carries a value that lacks serde's derives: one error per
// handler, on `ArticleView`.
use axum::extract::Path;
use axum::http::StatusCode;
use axum::Json;
use cache_runtime::cache;

pub struct ArticleView {
    pub title: String,
}

pub struct AppError;

#[cache(namespace = "articles")]
async fn show(Path(id): Path<u64>) -> Json<ArticleView> {
    Json(ArticleView { title: id.to_string() })
}

#[cache(namespace = "articles")]
async fn fallible(Path(id): Path<u64>) -> Result<Json<ArticleView>, AppError> {
    Ok(Json(ArticleView { title: id.to_string() }))
}

#[cache(namespace = "articles")]
async fn with_status(Path(id): Path<u64>) -> (StatusCode, Json<Vec<ArticleView>>) {
    let _ = id;
    (StatusCode::OK, Json(Vec::new()))
}

fn main() {}
