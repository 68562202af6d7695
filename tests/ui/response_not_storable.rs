use axum::response::{IntoResponse, Response};
use cache_runtime::cache;

#[cache(namespace = "pages")]
async fn page(id: u64) -> impl IntoResponse {
    id.to_string()
}

#[cache(namespace = "pages")]
async fn raw(id: u64) -> Response {
    id.to_string().into_response()
}

fn main() {}
