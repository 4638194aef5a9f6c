//! End-to-end tests against Debian's docker-registry and skopeo. One test
//! binary; each module covers one subject. Every test uses its own registry
//! and temp dirs, so they run in parallel.
//!
//! Tests that need docker-registry and skopeo skip (with a note) when they
//! are missing, unless `CI` is set, where they fail. The tools under test
//! must be built first: `cargo build --workspace`.

mod azure;
mod conformance;
mod diff;
mod faults;
mod gc;
mod harness;
mod inventory;
mod keep;
mod live;
mod ls;
mod names;
mod orphans;
mod refs;
mod s3;

use reg_tests::{registry_programs_available, Pushed, Registry, Scenario};

/// A running registry with the scenario pushed, or `None` when the test
/// should be skipped (programs missing outside CI).
#[track_caller]
pub fn scenario(test: &str) -> Option<(Registry, Pushed)> {
    if !registry_programs_available(test) {
        return None;
    }
    let reg = Registry::start().unwrap_or_else(|e| panic!("{test}: starting the registry: {e:#}"));
    let pushed = Scenario::push(&reg)
        .unwrap_or_else(|e| panic!("{test}: {e:#}\n--- registry log:\n{}", reg.log_contents()));
    Some((reg, pushed))
}
