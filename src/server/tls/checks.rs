//! What a serving certificate must be besides a match for its key: valid now
//! (notBefore passed, notAfter not) and valid for the names it must serve,
//! with webpki's name rules (wildcards included).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::server::ParsedCertificate;
use rustls::{CertificateError, client::verify_server_name};
use rustls_pki_types::{CertificateDer, ServerName};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::error::{NameRule, TlsError};

/// A name the certificate must cover, and why.
#[derive(Debug, Clone)]
pub(crate) struct RequiredName {
    /// A DNS name (a wildcard such as `*.example.com` is compared as written)
    /// or an IP address.
    pub name: String,
    /// Why, for the log: which rule asks for it.
    pub why: NameRule,
}

/// Refuses a leaf that is expired, not yet valid, or not valid for one of
/// `names`; `path` is the certificate file, for the message.
pub(crate) fn check_leaf(
    leaf: &CertificateDer<'_>,
    path: &Path,
    names: &[RequiredName],
) -> Result<(), TlsError> {
    let parsed = parse(leaf, path)?;
    let validity = parsed.validity();
    let now = unix_now();
    if validity.not_after.timestamp() < now {
        return Err(TlsError::Expired {
            path: path.to_path_buf(),
            not_after: validity.not_after,
        });
    }
    if validity.not_before.timestamp() > now {
        return Err(TlsError::NotYetValid {
            path: path.to_path_buf(),
            not_before: validity.not_before,
        });
    }
    let Some(first) = names.first() else {
        return Ok(());
    };
    let wrong = |required: &RequiredName, source| TlsError::WrongName {
        path: path.to_path_buf(),
        name: required.name.clone(),
        why: required.why,
        source,
    };
    // Already parsed once to match the key; a failure here is one more reason
    // the certificate cannot serve the name.
    let webpki = ParsedCertificate::try_from(leaf).map_err(|source| wrong(first, source))?;
    let written = dns_names_of(&parsed);
    for required in names {
        covers(&webpki, &written, &required.name).map_err(|source| wrong(required, source))?;
    }
    Ok(())
}

/// The DNS names of the leaf's subjectAltName, as written.
pub(crate) fn dns_names(leaf: &CertificateDer<'_>) -> Vec<String> {
    x509_parser::parse_x509_certificate(leaf.as_ref())
        .map(|(_, parsed)| dns_names_of(&parsed))
        .unwrap_or_default()
}

fn dns_names_of(parsed: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_string()),
            _ => None,
        })
        .collect()
}

/// Whether the leaf serves `name`: webpki's verification for a name a
/// client can ask for; a wildcard, which no client asks for, must be written
/// in the certificate as it is (ignoring case).
fn covers(
    leaf: &ParsedCertificate<'_>,
    written: &[String],
    name: &str,
) -> Result<(), rustls::Error> {
    match ServerName::try_from(name) {
        Ok(server_name) => verify_server_name(leaf, &server_name),
        Err(_) if written.iter().any(|w| w.eq_ignore_ascii_case(name)) => Ok(()),
        Err(_) => Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        )),
    }
}

fn parse<'a>(leaf: &'a CertificateDer<'_>, path: &Path) -> Result<X509Certificate<'a>, TlsError> {
    x509_parser::parse_x509_certificate(leaf.as_ref())
        .map(|(_, parsed)| parsed)
        .map_err(|source| TlsError::Leaf {
            path: path.to_path_buf(),
            source,
        })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rcgen::{CertificateParams, KeyPair};

    use super::*;

    fn leaf(names: &[&str], edit: impl FnOnce(&mut CertificateParams)) -> CertificateDer<'static> {
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let mut params = CertificateParams::new(names).unwrap();
        edit(&mut params);
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    fn listed(names: &[&str]) -> Vec<RequiredName> {
        let why = NameRule::Listed;
        names
            .iter()
            .map(|n| RequiredName {
                name: n.to_string(),
                why,
            })
            .collect()
    }

    #[test]
    fn names_follow_webpki_and_wildcards_are_kept_as_written() {
        let cert = leaf(&["*.ns.svc", "localhost", "10.0.0.1"], |_| {});
        let path = Path::new("tls.crt");
        let ok = listed(&["a.ns.svc", "LOCALHOST", "*.NS.svc", "10.0.0.1"]);
        check_leaf(&cert, path, &ok).unwrap();
        for missing in ["a.b.ns.svc", "ns.svc", "*.other.svc", "10.0.0.2"] {
            let error = check_leaf(&cert, path, &listed(&[missing])).unwrap_err();
            assert!(
                matches!(&error, TlsError::WrongName { name, .. } if name == missing),
                "{missing}: {error}"
            );
        }
        assert_eq!(dns_names(&cert), ["*.ns.svc", "localhost"]);
    }

    #[test]
    fn dates_are_checked_against_now() {
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let expired = leaf(&["localhost"], |p| {
            p.not_before = (now - 2 * day).into();
            p.not_after = (now - day).into();
        });
        let early = leaf(&["localhost"], |p| p.not_before = (now + day).into());
        let path = Path::new("tls.crt");
        let error = check_leaf(&expired, path, &[]).unwrap_err();
        assert!(matches!(error, TlsError::Expired { .. }), "{error}");
        assert!(!error.passes_with_time());
        let error = check_leaf(&early, path, &[]).unwrap_err();
        assert!(matches!(error, TlsError::NotYetValid { .. }), "{error}");
        assert!(error.passes_with_time());
        assert!(error.to_string().starts_with("tls.crt: "), "{error}");
    }
}
