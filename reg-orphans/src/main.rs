//! Not written yet: see its issue.
fn main() {}
