//! The rustls server configuration.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;

use super::client_ca::ClientCa;
use super::error::TlsError;
use super::reload::ServingCert;

/// TLS 1.2 and 1.3 only, HTTP/2 and HTTP/1.1 by ALPN, client certificates
/// required when a client CA is given.
pub fn server_config(
    serving: Arc<ServingCert>,
    client_ca: Option<Arc<ClientCa>>,
    provider: Arc<CryptoProvider>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(verifier) => builder.with_client_cert_verifier(verifier),
    };
    let mut config = builder.with_cert_resolver(serving);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
