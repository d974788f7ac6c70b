//! TLS: the rustls server configuration (TLS 1.2 and 1.3 only, ALPN, optional
//! client certificates), the serving certificate and its hot reload
//! ([`reload`]), and the certificates gracehook makes itself ([`certs`]).
//!
//! - `config`: the rustls configuration;
//! - `pair`: the key pair from its PEM files;
//! - [`reload`]: the serving certificate, reloaded when its files change;
//! - [`certs`]: certificates gracehook makes (`gracehook certs`, the
//!   self-signed fallback).

pub mod certs;
mod config;
mod error;
mod pair;
pub mod reload;

pub use config::server_config;
pub use error::TlsError;
pub use pair::{TlsFiles, certified_key, not_after};
pub use reload::{Reloader, ServingCert};
