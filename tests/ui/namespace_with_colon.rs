use cache_runtime::cache;

#[cache(namespace = "users:admin")]
async fn f(id: u64) -> u64 {
    id
}

fn main() {}
