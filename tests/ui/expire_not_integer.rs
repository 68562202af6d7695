use cache_runtime::cache;

#[cache(expire = "60")]
async fn f(id: u64) -> u64 {
    id
}

#[cache(expire = 1.5)]
async fn g(id: u64) -> u64 {
    id
}

#[cache(expire = 0)]
async fn h(id: u64) -> u64 {
    id
}

fn main() {}
