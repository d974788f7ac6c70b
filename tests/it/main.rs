//! The in-process tests, one module per area: the planner and its property
//! tests, the admission layer, the routers without sockets, the audit report,
//! the command line on the built binary, and the manifests with a real kubectl.
//! One crate, so the library is linked once for all of them.

#[path = "../common/mod.rs"]
mod common;

mod admission;
mod audit;
mod cli;
mod manifests;
mod planner;
mod properties;
mod router;
