// A generic function whose type parameter is not bounded by `Storable` (or by serde's
// traits): one error, on the type parameter, which the compiler suggests to bound.
use cache_runtime::cache;

#[cache(namespace = "echo", skip = [make])]
async fn echo<T: Clone>(value: u64, make: fn(u64) -> T) -> Option<Vec<T>> {
    Some(vec![make(value)])
}

// Bounded, it compiles.
#[cache(namespace = "echo", skip = [make])]
async fn echo_bounded<T: cache_runtime::Storable>(value: u64, make: fn(u64) -> T) -> Vec<T> {
    vec![make(value)]
}

fn main() {}
