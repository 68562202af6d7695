use cache_runtime::cache;

#[cache(key = "k", key_builder = |id: &u64| id.to_string())]
async fn f(id: u64) -> u64 {
    id
}

fn main() {}
