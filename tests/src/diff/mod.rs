//! The differential test's parts: a seeded generator of odd-but-valid
//! manifests ([`gen`]), written byte for byte ([`json`]) from a tiny PRNG
//! ([`rng`]), pushed through the registry's HTTP API ([`push`]) and
//! fetched back completely, by the digests the manifests name ([`fetch`]).

pub mod fetch;
pub mod gen;
pub mod json;
pub mod par;
pub mod push;
pub mod rng;
mod write;

pub use gen::{Case, Doc, Kind, Plan, Ref, Role, Skip, Target};
