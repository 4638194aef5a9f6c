//! Smoke tests of the reg-ls binary (the end-to-end tests live in `tests/`).

use std::process::Command;

#[test]
fn nonexistent_root_fails_naming_the_path() {
    let out = Command::new(env!("CARGO_BIN_EXE_reg-ls"))
        .arg("/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("reg-ls: /nonexistent: "), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_usage_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_reg-ls"))
        .args(["--kind", "nope", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
