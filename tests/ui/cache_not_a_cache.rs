use cache_runtime::cache;

struct State {
    cache: String,
}

#[cache(cache = &state.cache, skip = [state])]
async fn f(state: State, id: u64) -> u64 {
    id
}

fn main() {}
