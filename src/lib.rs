//! gracehook: a mutating admission webhook that gives pods a graceful shutdown.
//!
//! The layers, from pure to effectful:
//! - [`duration`], [`annotations`], [`settings`]: reading the inputs;
//! - [`plan`]: pod + settings -> what to change (pure);
//! - [`patch`]: plan -> RFC 6902 JSON patch;
//! - [`summary`]: plan -> sentences for warnings;
//! - [`admission`]: AdmissionReview -> AdmissionReview;
//! - [`workload`]: the same plan applied offline to manifests;
//! - [`cli`]: the command line.

pub mod admission;
pub mod annotations;
pub mod audit;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod duration;
pub mod explain;
pub mod http;
pub mod metrics;
pub mod namespaces;
pub mod patch;
pub mod plan;
pub mod serve;
pub mod settings;
pub mod summary;
pub mod tls;
pub mod wire;
pub mod workload;
