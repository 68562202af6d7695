use axum::http::HeaderMap;
use cache_runtime::cache;

#[cache(namespace = "pages")]
async fn page(headers: HeaderMap, id: u64) -> String {
    format!("{id} {}", headers.len())
}

fn main() {}
