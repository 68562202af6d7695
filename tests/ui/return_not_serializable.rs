// A return type the cache cannot store is reported at the return type.
struct Report {
    total: u64,
}

#[cache_runtime::cache(expire = 60)]
async fn report(day: u32) -> Report {
    Report { total: u64::from(day) }
}

fn main() {}
