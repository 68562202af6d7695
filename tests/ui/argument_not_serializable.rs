use cache_runtime::cache;

pub struct Db;

#[cache(namespace = "users")]
async fn get_user(db: &Db, user_id: u64) -> String {
    let _ = db;
    user_id.to_string()
}

fn main() {}
