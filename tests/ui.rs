//! Compile errors of `#[cache]`: each `tests/ui/*.rs` fails to build with the message and span
//! recorded in its `.stderr` file. Regenerate with `TRYBUILD=overwrite cargo test --test ui`.

#[test]
fn compile_errors_point_at_the_offending_token() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
