//! TLS: the rustls server configuration (TLS 1.2 and 1.3 only, ALPN, optional
//! client certificates), the serving certificate and client CA with their hot
//! reload ([`reload`]), and the certificates gracehook makes itself
//! ([`certs`]).
//!
//! - `config`: the rustls configuration;
//! - `pair`: the key pair from its PEM files;
//! - `checks`: what a serving certificate must be (valid now, for its names);
//! - `client_ca`: the client verifier, replaced when the CA changes;
//! - [`reload`]: the serving certificate and client CA, reloaded when their
//!   files change;
//! - [`certs`]: certificates gracehook makes (`gracehook certs`, the
//!   self-signed fallback).

pub mod certs;
mod checks;
mod client_ca;
mod config;
mod error;
mod pair;
pub mod reload;

pub use client_ca::ClientCa;
pub use config::server_config;
pub use error::{NameRule, TlsError};
pub use pair::{TlsFiles, certified_key, not_after};
pub use reload::{Reloader, ServingCert};
