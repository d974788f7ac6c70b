//! `gracehook serve` as a process, over real TLS.

use crate::common;

use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::server::{Conn, Leaf, Pki, Server, client_config, temp_dir, tls_server, write};
use crate::common::{review_for, web_pod};
use serde_json::json;

const H1: &[&[u8]] = &[b"http/1.1"];
const H2: &[&[u8]] = &[b"h2"];

fn seed_review() -> serde_json::Value {
    review_for(
        &web_pod(
            json!({ "gracehook.io/drain-delay": "3s", "gracehook.io/drain-command": "apachectl -k graceful-stop" }),
        ),
        "shop",
    )
}

/// Certificate files for 127.0.0.1, signed by `pki`.
fn serving_files(dir: &Path, pki: &Pki) -> (String, String) {
    let leaf = pki.leaf(&["127.0.0.1", "localhost"], "gracehook");
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    write(&cert, &leaf.cert_pem);
    write(&key, &leaf.key_pem);
    (cert.display().to_string(), key.display().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn reviews_over_http1_and_http2_and_bad_requests() {
    let (pki, server) = tls_server("basic", &[]);

    for (alpn, version) in [(H1, hyper::Version::HTTP_11), (H2, hyper::Version::HTTP_2)] {
        let (mut conn, _) = Conn::open(server.addr, client_config(&[&pki.ca_pem], None, alpn))
            .await
            .unwrap();
        let reply = conn.review("/mutate", &seed_review()).await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.version, version);
        let body = reply.json();
        assert_eq!(
            body["response"]["uid"],
            "705ab4f5-6393-11e8-b7cc-42010a800002"
        );
        let patch = common::response_patch(&body).expect("patch");
        assert!(
            serde_json::to_string(&patch)
                .unwrap()
                .contains("apachectl -k graceful-stop")
        );
        // Keep-alive: a second review on the same connection.
        let reply = conn
            .review("/audit", &seed_review())
            .await
            .unwrap_or_else(|e| panic!("{e}; server logs: {:?}", server.logs()));
        assert_eq!(reply.status, 200);
        assert!(
            reply.json()["response"]["warnings"][0]
                .as_str()
                .unwrap()
                .starts_with("gracehook audit:")
        );

        let bad = |status: u16, reply: common::server::Reply| {
            assert_eq!(
                reply.status,
                status,
                "{}",
                String::from_utf8_lossy(&reply.body)
            );
            assert_eq!(reply.json()["code"], status, "JSON error body");
        };
        bad(
            400,
            conn.send(
                "POST",
                "/mutate",
                Some("application/json"),
                b"{oops".to_vec(),
            )
            .await
            .unwrap(),
        );
        bad(
            400,
            conn.send(
                "POST",
                "/mutate",
                Some("application/json"),
                br#"{"kind":"AdmissionReview"}"#.to_vec(),
            )
            .await
            .unwrap(),
        );
        bad(
            415,
            conn.send("POST", "/mutate", Some("text/plain"), b"{}".to_vec())
                .await
                .unwrap(),
        );
        bad(
            415,
            conn.send("POST", "/audit", None, b"{}".to_vec())
                .await
                .unwrap(),
        );
        bad(
            405,
            conn.send("GET", "/mutate", None, Vec::new()).await.unwrap(),
        );
        bad(
            404,
            conn.send(
                "POST",
                "/validate",
                Some("application/json"),
                b"{}".to_vec(),
            )
            .await
            .unwrap(),
        );
        let huge = vec![b' '; 7 * 1024 * 1024 + 1];
        bad(
            413,
            conn.send("POST", "/mutate", Some("application/json"), huge)
                .await
                .unwrap(),
        );
        // The server is still serving after all that.
        let (mut fresh, _) = Conn::open(server.addr, client_config(&[&pki.ca_pem], None, alpn))
            .await
            .unwrap();
        assert_eq!(
            fresh
                .review("/mutate", &seed_review())
                .await
                .unwrap()
                .status,
            200
        );
    }

    let patched = server
        .metric(r#"gracehook_admission_requests_total{path="/mutate",outcome="patched"}"#)
        .await;
    assert_eq!(patched, 4.0);
    let bad = server
        .metric(r#"gracehook_admission_requests_total{path="/mutate",outcome="bad_request"}"#)
        .await;
    assert!(bad >= 6.0, "{bad}");
    assert!(
        server
            .metric("gracehook_admission_duration_seconds_count")
            .await
            >= 6.0
    );
    assert!(server.metric("gracehook_tls_cert_not_after_seconds").await > 1.7e9);
    assert_eq!(server.ops_get("/healthz").await.0, 200);
    assert_eq!(server.ops_get("/readyz").await.0, 200);
    let logs = server.logs();
    let line = logs
        .iter()
        .find(|l| l.contains(r#""outcome":"patched""#))
        .expect("an admission log line");
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    for field in [
        "uid",
        "namespace",
        "name",
        "path",
        "mode",
        "outcome",
        "latency_us",
    ] {
        assert!(!line[field].is_null(), "{field} missing from {line}");
    }
}

/// A ClientHello that offers TLS 1.1 only.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02];
    body.extend([7u8; 32]);
    body.push(0); // session id
    // Suites the server supports, so the version is the only thing wrong.
    body.extend([0x00, 0x06, 0xc0, 0x2b, 0xc0, 0x2f, 0x13, 0x01]);
    body.extend([0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0x00, (body.len() >> 8) as u8, body.len() as u8];
    handshake.extend(body);
    let mut record = vec![
        0x16,
        0x03,
        0x01,
        (handshake.len() >> 8) as u8,
        handshake.len() as u8,
    ];
    record.extend(handshake);
    record
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_below_1_2_is_refused_and_1_2_works() {
    let (pki, server) = tls_server("versions", &[]);

    let mut tcp = std::net::TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(&tls11_client_hello()).unwrap();
    let mut reply = [0u8; 7];
    tcp.read_exact(&mut reply).unwrap();
    assert_eq!(
        reply[0], 0x15,
        "an alert record, not a ServerHello: {reply:?}"
    );
    assert_eq!(reply[5], 2, "a fatal alert: {reply:?}");
    // rustls answers handshake_failure (40) rather than protocol_version (70).
    assert!([40, 70].contains(&reply[6]), "alert {reply:?}");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        roots
            .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
            .unwrap();
    }
    let tls12 = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (mut conn, _) = Conn::open(server.addr, Arc::new(tls12)).await.unwrap();
    assert_eq!(
        conn.review("/mutate", &seed_review()).await.unwrap().status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_accepts_signed_clients_only() {
    let dir = temp_dir("mtls");
    let pki = Pki::new("serving-ca");
    let clients = Pki::new("client-ca");
    let strangers = Pki::new("other-ca");
    let (cert, key) = serving_files(&dir, &pki);
    let ca = dir.join("client-ca.crt");
    write(&ca, &clients.ca_pem);
    let server = Server::start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--client-ca",
        ca.to_str().unwrap(),
    ]);

    let apiserver: Leaf = clients.leaf(&[], "kube-apiserver");
    let (mut conn, _) = Conn::open(
        server.addr,
        client_config(&[&pki.ca_pem], Some(&apiserver), H2),
    )
    .await
    .expect("a signed client connects");
    assert_eq!(
        conn.review("/mutate", &seed_review()).await.unwrap().status,
        200
    );

    let stranger = strangers.leaf(&[], "mallory");
    for identity in [None, Some(&stranger)] {
        let outcome =
            match Conn::open(server.addr, client_config(&[&pki.ca_pem], identity, H1)).await {
                Err(e) => Err(e),
                // With TLS 1.3 the client finishes first; the refusal arrives on first use.
                Ok((mut conn, _)) => conn
                    .review("/mutate", &seed_review())
                    .await
                    .map(|r| r.status),
            };
        assert!(outcome.is_err(), "refused: {outcome:?}");
    }
}

/// Lays out certificate files the way the kubelet mounts a Secret:
/// `tls.crt -> ..data/tls.crt`, `..data -> ..<timestamp>`.
fn kubelet_publish(dir: &Path, version: &str, leaf: &Leaf) {
    let target = dir.join(format!("..{version}"));
    std::fs::create_dir_all(&target).unwrap();
    write(&target.join("tls.crt"), &leaf.cert_pem);
    write(&target.join("tls.key"), &leaf.key_pem);
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for file in ["tls.crt", "tls.key"] {
        if std::fs::symlink_metadata(dir.join(file)).is_err() {
            symlink(format!("..data/{file}"), dir.join(file)).unwrap();
        }
    }
}

fn der_of(pem: &str) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_rotation_through_a_symlink_swap_keeps_serving() {
    let dir = temp_dir("rotation");
    let pki = Pki::new("test-ca");
    let first = pki.leaf_until(&["127.0.0.1"], "first", 2030);
    kubelet_publish(&dir, "2026_11_25_01", &first);
    let cert = dir.join("tls.crt").display().to_string();
    let key = dir.join("tls.key").display().to_string();
    let server = Server::start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-reload-interval",
        "100ms",
    ]);
    let config = client_config(&[&pki.ca_pem], None, H2);
    let (mut kept, leaf) = Conn::open(server.addr, config.clone()).await.unwrap();
    assert_eq!(leaf, der_of(&first.cert_pem));
    let expiry_before = server.metric("gracehook_tls_cert_not_after_seconds").await;

    // A stream of requests on fresh connections for the whole rotation.
    let failures = Arc::new(AtomicUsize::new(0));
    let successes = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stream = {
        let (failures, successes, stop, config, addr) = (
            failures.clone(),
            successes.clone(),
            stop.clone(),
            config.clone(),
            server.addr,
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let ok = match Conn::open(addr, config.clone()).await {
                    Ok((mut c, _)) => c
                        .review("/mutate", &seed_review())
                        .await
                        .is_ok_and(|r| r.status == 200),
                    Err(_) => false,
                };
                let counter = if ok { &successes } else { &failures };
                counter.fetch_add(1, Ordering::SeqCst);
            }
        })
    };

    // A mismatched pair (cert of one key, another key) is refused; the old one stays.
    let other = pki.leaf(&["127.0.0.1"], "other");
    kubelet_publish(
        &dir,
        "2026_11_25_02",
        &Leaf {
            cert_pem: other.cert_pem.clone(),
            key_pem: first.key_pem.clone(),
        },
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while server
        .metric(r#"gracehook_tls_reloads_total{result="error"}"#)
        .await
        < 1.0
    {
        assert!(Instant::now() < deadline, "the bad pair was never noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, leaf) = Conn::open(server.addr, config.clone()).await.unwrap();
    assert_eq!(leaf, der_of(&first.cert_pem), "still the first certificate");

    // A proper rotation.
    let second = pki.leaf_until(&["127.0.0.1"], "second", 2031);
    kubelet_publish(&dir, "2026_11_25_03", &second);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, leaf) = Conn::open(server.addr, config.clone()).await.unwrap();
        if leaf == der_of(&second.cert_pem) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within 10 s: {:?}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    stream.await.unwrap();
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "requests failed during rotation"
    );
    assert!(successes.load(Ordering::SeqCst) > 0);
    // The connection opened before the rotation still works.
    assert_eq!(
        kept.review("/mutate", &seed_review()).await.unwrap().status,
        200
    );
    assert!(
        server
            .metric(r#"gracehook_tls_reloads_total{result="success"}"#)
            .await
            >= 1.0
    );
    let expiry_after = server.metric("gracehook_tls_cert_not_after_seconds").await;
    assert_eq!(expiry_before, 1_893_456_000.0, "2030-01-01");
    assert_eq!(expiry_after, 1_924_992_000.0, "2031-01-01");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_fails_readiness_keeps_serving_then_exits_zero() {
    let (pki, mut server) = tls_server(
        "shutdown",
        &["--shutdown-delay", "1500ms", "--shutdown-timeout", "5s"],
    );
    let config = client_config(&[&pki.ca_pem], None, H1);
    let (mut kept, _) = Conn::open(server.addr, config.clone()).await.unwrap();
    assert_eq!(
        kept.review("/mutate", &seed_review()).await.unwrap().status,
        200
    );
    assert_eq!(server.ops_get("/readyz").await.0, 200);

    server.signal("TERM");
    let signalled = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.ops_get("/readyz").await.0 != 503 {
        assert!(Instant::now() < deadline, "readyz never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // During the delay, new and kept connections are served: none fails.
    let mut served = 0;
    while signalled.elapsed() < Duration::from_millis(1000) {
        let (mut fresh, _) = Conn::open(server.addr, config.clone())
            .await
            .expect("still accepting");
        assert_eq!(
            fresh
                .review("/mutate", &seed_review())
                .await
                .unwrap()
                .status,
            200
        );
        assert_eq!(
            kept.review("/audit", &seed_review()).await.unwrap().status,
            200
        );
        served += 1;
    }
    assert!(served > 0);
    let code = tokio::task::block_in_place(|| server.wait(Duration::from_secs(10)));
    assert_eq!(code, Some(0), "exit code; logs: {:?}", server.logs());
    assert!(
        signalled.elapsed() >= Duration::from_millis(1500),
        "left before the delay"
    );
    assert!(
        std::net::TcpStream::connect(server.addr).is_err(),
        "listener closed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_certificates_it_serves_a_self_signed_one_and_says_so() {
    let server = Server::start(&[]);
    let logs = server.logs();
    assert!(logs.iter().any(|l| l.contains("self-signed")), "{logs:?}");
    // Trust the certificate the server chose, as a curl -k would.
    let (_, leaf) = Conn::open(server.addr, insecure()).await.unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    let names = format!(
        "{:?}",
        parsed.subject_alternative_name().unwrap().unwrap().value
    );
    assert!(names.contains("localhost"), "{names}");
}

/// A client that accepts any certificate: only to read what the server sends.
fn insecure() -> Arc<rustls::ClientConfig> {
    #[derive(Debug)]
    struct AcceptAll(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AcceptAll {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAll(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_exits_at_once() {
    let (_pki, mut server) = tls_server("second-signal", &["--shutdown-delay", "60s"]);
    server.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.ops_get("/readyz").await.0 != 503 {
        assert!(Instant::now() < deadline, "readyz never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.signal("INT");
    let code = tokio::task::block_in_place(|| server.wait(Duration::from_secs(5)));
    assert_eq!(
        code,
        Some(1),
        "the second signal did not end the 60 s delay"
    );
}
