//! Certificates made by gracehook itself: the throw-away one `serve` uses when
//! none is given.

use rcgen::{CertificateParams, KeyPair};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("generating a certificate: {0}")]
pub struct CertsError(#[from] rcgen::Error);

/// A PEM certificate and its PEM private key.
pub struct Generated {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A self-signed ECDSA P-256 certificate for `names` (DNS names or IP addresses).
pub fn self_signed(names: &[&str]) -> Result<Generated, CertsError> {
    let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    Ok(Generated {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
