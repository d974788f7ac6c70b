//! The serving key pair from its PEM files: read, parsed, checked to match,
//! and its expiry.

use std::path::{Path, PathBuf};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::TlsError;

/// Where the serving certificate and key are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Parses a PEM chain (leaf first, then intermediates) and key into a pair,
/// refusing a key that does not match the leaf and a malformed PEM block.
pub fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = certificates(cert_pem, &files.cert)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| TlsError::NoKey {
        path: files.key.clone(),
        source,
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Pair {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    })
}

/// Every certificate of a PEM file, in order; a block that cannot be decoded
/// (a truncated intermediate) is an error naming the file, never skipped.
/// Text around the blocks is ignored, as PEM allows.
pub(crate) fn certificates(
    pem: &[u8],
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_slice_iter(pem)
        .enumerate()
        .map(|(index, cert)| {
            cert.map_err(|source| TlsError::Pem {
                path: path.to_path_buf(),
                index: index.saturating_add(1),
                source,
            })
        })
        .collect()
}

/// The leaf's notAfter as a Unix timestamp.
pub fn not_after(key: &CertifiedKey) -> Option<i64> {
    let leaf = key.cert.first()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp())
}

/// The file's bytes, or an error naming it.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_block_is_an_error_naming_the_file_and_the_block() {
        let generated = crate::server::tls::certs::self_signed(&["localhost"]).unwrap();
        let half = generated.cert_pem.len() / 2;
        let truncated = generated.cert_pem.get(..half).unwrap();
        let chain = format!("{}{truncated}", generated.cert_pem);
        let error = certificates(chain.as_bytes(), Path::new("tls.crt")).unwrap_err();
        assert!(
            matches!(
                &error,
                TlsError::Pem {
                    index: 2,
                    source: rustls_pki_types::pem::Error::MissingSectionEnd { .. },
                    ..
                }
            ),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .starts_with("tls.crt: certificate number 2")
        );
    }
}
