use cache_runtime::cache;

#[cache(expire = 60)]
fn f(id: u64) -> u64 {
    id
}

fn main() {}
