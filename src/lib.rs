//! gracehook: a mutating admission webhook that gives pods a graceful shutdown.
//!
//! A request flows one way through the layers (the user-facing reference is
//! `docs/`):
//!
//! - [`server`]: connections and shutdown, the HTTP routes
//!   ([`server::routes`]), TLS ([`server::tls`]) and metrics;
//! - [`admission`]: AdmissionReview in, AdmissionReview out;
//! - [`planner`]: annotations, durations and settings -> plan -> JSON patch,
//!   warnings or a timeline; the grace-period formula is [`planner::grace`];
//! - [`policy`]: the same plan as in-tree admission policies, no webhook;
//! - [`cluster`]: what gracehook reads from the API server, never on the
//!   request path: its version, namespace defaults, and `gracehook audit`;
//! - [`observe`]: after the pods are gone, how their drains ended
//!   (`gracehook observe`, `gracehook drains`).
//!
//! The binary (`src/main.rs`, `src/commands/`) parses the command line and
//! is the only place that prints or chooses an exit code.

pub mod admission;
pub mod cluster;
pub mod observe;
pub mod planner;
pub mod policy;
pub mod server;
