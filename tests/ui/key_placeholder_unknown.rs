use cache_runtime::cache;

#[cache(namespace = "products", key = "product_{product_id}")]
async fn f(id: u64) -> u64 {
    id
}

fn main() {}
