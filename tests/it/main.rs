//! The in-process tests, one module per area: the planner and its property
//! tests, the admission layer, the routers without sockets, the audit report,
//! the command line on the built binary, and the manifests with a real kubectl.
//! One crate, so the library is linked once for all of them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::too_many_lines,
    missing_docs
)]

#[path = "../common/mod.rs"]
mod common;

mod admission;
mod audit;
mod audit_api;
mod cli;
mod drain_commands;
mod manifests;
mod planner;
mod pod_view;
mod policy;
mod properties;
mod router;
mod sidecars;
