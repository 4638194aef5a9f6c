//! Test harness for the reg tools: a private Debian `docker-registry`,
//! OCI images built in memory, skopeo and HTTP helpers to push them, a fixed
//! scenario with the expectations it implies, and helpers to run the tools.

pub mod azurite;
pub mod diff;
pub mod http;
pub mod inventory;
pub mod moto;
pub mod objects;
pub mod oci;
pub mod proxy;
pub mod registry;
pub mod scenario;
pub mod server;
pub mod skopeo;
pub mod tools;
pub mod tree;

pub use azurite::{azure_programs_available, Azurite};
pub use http::Api;
pub use moto::{s3_programs_available, Moto};
pub use registry::{GcReport, LogFormat, Registry, S3Storage};
pub use scenario::{everything_live_pulls, Pushed, Scenario};
pub use tools::{orphan_list, reg_rm, registry_programs_available, run_tool, tool_path, Run, Tool};
