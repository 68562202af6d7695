use cache_runtime::cache;

#[cache(skip = [db, conn])]
async fn f(db: u32, id: u64) -> u64 {
    id + u64::from(db)
}

fn main() {}
