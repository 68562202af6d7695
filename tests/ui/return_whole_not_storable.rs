// Each part of the value type can be stored but the whole cannot (a map's keys must be
// `Eq + Hash` to be read back): one error, on the whole value type.
use std::collections::HashMap;

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Day(u32);

#[cache_runtime::cache(namespace = "days")]
async fn totals(id: u64) -> Result<HashMap<Day, u64>, std::io::Error> {
    let _ = id;
    Ok(HashMap::new())
}

// A `Result` alias with another name: `returns = "result"` stores its `Ok` value, which
// is reported whole.
pub struct ArticleView;
pub type Lookup = Result<ArticleView, std::io::Error>;

#[cache_runtime::cache(namespace = "days", returns = "result")]
async fn lookup(id: u64) -> Lookup {
    let _ = id;
    Ok(ArticleView)
}

fn main() {}
