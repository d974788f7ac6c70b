//! Certificates made by gracehook itself: the throw-away one `serve` uses when
//! none is given, and the CA and serving certificate of `gracehook certs`.

use rcgen::{CertificateParams, KeyPair};
use thiserror::Error;

/// rcgen failed.
#[derive(Debug, Error)]
#[error("generating a certificate: {0}")]
pub struct CertsError(#[from] rcgen::Error);

/// A PEM certificate and its PEM private key.
pub struct Generated {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key.
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

/// The files `gracehook certs` writes for a webhook Service.
pub struct WebhookCerts {
    /// The CA, for the webhook configuration's `caBundle`.
    pub ca_pem: String,
    /// The serving certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

/// The DNS names the API server may use for `service.namespace`.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// A fresh CA and a serving certificate signed by it, both ECDSA P-256. The
/// CA key is not kept: renewing means running the command again, which also
/// renews the CA bundle, so no long-lived signing key lies around.
pub fn webhook_certs(names: &[String], days: u32) -> Result<WebhookCerts, CertsError> {
    use rcgen::{BasicConstraints, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyUsagePurpose};
    let now = std::time::SystemTime::now();
    let valid_for = |days: u32| now + std::time::Duration::from_secs(u64::from(days) * 86_400);

    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "gracehook webhook CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now.into();
    // A little longer than the leaf, so the pair expires by the leaf's date.
    ca.not_after = valid_for(days.saturating_add(1)).into();
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let ca_cert = ca.self_signed(&ca_key)?;

    let mut leaf = CertificateParams::new(names.to_vec())?;
    if let Some(first) = names.iter().find(|n| n.ends_with(".svc")) {
        leaf.distinguished_name
            .push(DnType::CommonName, first.as_str());
    }
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now.into();
    leaf.not_after = valid_for(days).into();
    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let issuer = Issuer::from_params(&ca, &ca_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    Ok(WebhookCerts {
        ca_pem: ca_cert.pem(),
        cert_pem: leaf_cert.pem(),
        key_pem: leaf_key.serialize_pem(),
    })
}

/// The kustomize patch that puts the CA bundle into both webhooks.
pub fn ca_bundle_patch(ca_bundle_b64: &str) -> String {
    let mut patch = String::from(
        "# Written by `gracehook certs`: the CA bundle of the webhook's serving certificate.\n",
    );
    for index in 0..2 {
        patch.push_str(&format!(
            "- op: add\n  path: /webhooks/{index}/clientConfig/caBundle\n  value: {ca_bundle_b64}\n"
        ));
    }
    patch
}
