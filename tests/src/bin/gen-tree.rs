//! reg-core's `gen_tree` example (`reg-core/examples/gen_tree.rs`), built as
//! a binary of this crate so that the tests that need a generated tree
//! (`tests/tests/progress.rs`) find it next to the tools, built by the same
//! `cargo test` (`CARGO_BIN_EXE_gen-tree`), with the same features.

#[path = "../../../reg-core/examples/gen_tree.rs"]
mod gen_tree;

fn main() -> std::process::ExitCode {
    gen_tree::main()
}
