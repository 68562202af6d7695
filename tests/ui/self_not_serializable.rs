use cache_runtime::cache;

pub struct Repo;

impl Repo {
    #[cache(namespace = "repo")]
    async fn find(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
