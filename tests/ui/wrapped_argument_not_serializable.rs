use cache_runtime::cache;

pub struct AuthToken(String);

#[cache(namespace = "feed")]
async fn feed(auth: Option<AuthToken>, ids: &Vec<AuthToken>, page: u32) -> u32 {
    let _ = (auth.map(|a| a.0), ids.len());
    page
}

fn main() {}
