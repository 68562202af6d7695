//! Examples and integration tests of `cache-runtime` live in this package's `examples/` and
//! `tests/`; it has no code of its own.
