use cache_runtime::invalidate;

#[invalidate()]
async fn no_target(_id: u64) {}

#[invalidate(key = "user-{id}")]
async fn key_without_namespace(id: u64) {}

#[invalidate(key = "users:user:{name}")]
async fn unknown_placeholder(_id: u64) {}

#[invalidate(namespace = "posts")]
fn not_async() {}

fn main() {}
