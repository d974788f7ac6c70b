//! The client CA of `--client-ca`: a verifier that delegates to the one
//! built from the CA bundle now on disk, so that a rotated CA is used from the
//! next handshake on, without a restart.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::DistinguishedName;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::error::TlsError;
use super::pair::certificates;

/// Clients must hold a certificate signed by the current CA bundle.
///
/// It sends no CA names in its certificate request (an empty list: "any
/// certificate you have"), since the names would have to outlive a reload;
/// Go's and rustls's clients then send the certificate they hold.
#[derive(Debug)]
pub struct ClientCa {
    current: RwLock<Arc<dyn ClientCertVerifier>>,
}

impl ClientCa {
    /// Verifies clients against the CA bundle `pem`, read from `path`.
    pub fn new(pem: &[u8], path: &Path, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        Ok(ClientCa {
            current: RwLock::new(verifier(pem, path, provider)?),
        })
    }

    /// Verifies clients against `pem` from the next handshake on; a bundle
    /// that cannot be used changes nothing.
    pub(crate) fn replace(
        &self,
        pem: &[u8],
        path: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<(), TlsError> {
        let fresh = verifier(pem, path, provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        // A poisoned lock still holds a valid verifier.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Every certificate of the bundle is a trust anchor; a malformed block or
/// an empty file is an error naming the file.
fn verifier(
    pem: &[u8],
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem, path)? {
        roots.add(cert).map_err(|source| TlsError::ClientCa {
            path: path.to_path_buf(),
            source,
        })?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoClientCa {
            path: path.to_path_buf(),
        });
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|source| TlsError::ClientVerifier {
            path: path.to_path_buf(),
            source,
        })
}

impl ClientCertVerifier for ClientCa {
    fn offer_client_auth(&self) -> bool {
        self.current().offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.current().client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.current().requires_raw_public_keys()
    }
}
