use cache_runtime::cache;

#[cache(expires = 60)]
async fn f(id: u64) -> u64 {
    id
}

fn main() {}
