use cache_runtime::cache;

#[cache(jitter = 2.0)]
async fn f(id: u64) -> u64 {
    id
}

#[cache(lock = "yes")]
async fn g(id: u64) -> u64 {
    id
}

fn main() {}
