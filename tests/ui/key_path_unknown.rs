use cache_runtime::cache;

#[cache(key = "page:{nobody.id}")]
async fn page(auth: u64) -> String {
    auth.to_string()
}

fn main() {}
