//! `gracehook serve`: the webhook server. It may use the admission layer
//! and the planner, never the cluster or the command line.
//!
//! - [`run()`]: the server's life, from bind to drained, with its flags
//!   ([`ServerArgs`]) and its error ([`ServeError`]);
//! - [`routes`]: the HTTP surface (admission and operations routers);
//! - [`tls`]: the rustls configuration and the reloaded serving certificate;
//! - `connections`: accepting TCP, the TLS handshake, HTTP/1.1 and HTTP/2;
//! - `shutdown`: signals, and the shutdown gracehook teaches pods — fail
//!   readiness, keep serving for a while, stop accepting, finish what is in
//!   flight, exit 0;
//! - [`metrics`]: what `/metrics` reports.

mod args;
mod body;
mod connections;
mod error;
pub mod metrics;
pub mod routes;
mod run;
mod shutdown;
pub mod tls;

pub use args::ServerArgs;
pub use error::ServeError;
pub use run::{run, serve_ops};
pub use shutdown::Signals;
