//! The cluster side, never on the request path: the API client and version
//! ([`mod@client`]), the watched namespace defaults ([`namespaces`]), and
//! `gracehook audit` — listing the workloads ([`workloads`]) through calls
//! that retry and survive expired lists ([`calls`]), and assessing them
//! ([`risks`]). It may use the planner and the admission layer's types,
//! never the server or the command line.

pub mod calls;
pub mod client;
mod error;
pub mod namespaces;
pub mod risks;
pub mod workloads;

pub use client::{ServerVersion, client, server_version};
pub use error::{CallError, ClusterError};
