//! What `gracehook serve` does with the certificates it is given, at start
//! and when their files change: refuses an expired, not yet valid or
//! wrongly named certificate and a chain with a malformed block, keeping the
//! one it serves; reads an update again rather than count a torn read; and
//! reloads the client CA.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use crate::common::server::{
    Conn, Leaf, Pki, Server, client_config, serve_command, temp_dir, write,
};

const H1: &[&[u8]] = &[b"http/1.1"];
const ERRORS: &str = r#"gracehook_tls_reloads_total{result="error"}"#;
const SUCCESSES: &str = r#"gracehook_tls_reloads_total{result="success"}"#;
const DAY: Duration = Duration::from_secs(86_400);

/// The leaf's DER, as a client receives it.
fn der(leaf: &Leaf) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// A leaf valid from `not_before` to `not_after`.
fn leaf_valid(pki: &Pki, names: &[&str], not_before: SystemTime, not_after: SystemTime) -> Leaf {
    pki.leaf_with(names, "gracehook", |params| {
        params.not_before = not_before.into();
        params.not_after = not_after.into();
    })
}

/// The serving files in a fresh directory.
struct Files {
    dir: PathBuf,
    cert: String,
    key: String,
}

impl Files {
    fn new(name: &str, leaf: &Leaf) -> Files {
        let dir = temp_dir(name);
        let files = Files {
            cert: dir.join("tls.crt").display().to_string(),
            key: dir.join("tls.key").display().to_string(),
            dir,
        };
        files.publish(leaf);
        files
    }

    fn publish(&self, leaf: &Leaf) {
        write(Path::new(&self.cert), &leaf.cert_pem);
        write(Path::new(&self.key), &leaf.key_pem);
    }

    /// `serve` on these files, polled every 100 ms, with `extra` arguments.
    fn serve(&self, extra: &[&str]) -> Server {
        let mut args = vec![
            "--tls-cert",
            self.cert.as_str(),
            "--tls-key",
            self.key.as_str(),
            "--tls-reload-interval",
            "100ms",
        ];
        args.extend_from_slice(extra);
        Server::start(&args)
    }
}

/// The leaf served to a new connection.
async fn served(server: &Server, pki: &Pki) -> Vec<u8> {
    let config = client_config(&[&pki.ca_pem], None, H1);
    Conn::open(server.addr, config).await.unwrap().1
}

/// Waits up to 15 s for `check`, polling; fails with `what` and the logs.
async fn eventually<F, Fut>(server: &Server, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what} within 15 s; logs: {:#?}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The server's log lines that contain every one of `parts`.
fn logged(server: &Server, parts: &[&str]) -> Vec<String> {
    server
        .logs()
        .into_iter()
        .filter(|line| parts.iter().all(|p| line.contains(p)))
        .collect()
}

/// Serves `first`, publishes `bad`, and checks that it is refused: one error
/// counted, logged with `why` and the certificate file, and `first` still
/// served.
async fn refused_on_reload(
    name: &str,
    pki: &Pki,
    first: &Leaf,
    bad: &Leaf,
    extra: &[&str],
    why: &str,
) {
    let files = Files::new(name, first);
    let server = files.serve(extra);
    assert_eq!(served(&server, pki).await, der(first));

    files.publish(bad);
    let kept = ["kept the previous serving certificate", why, &files.cert];
    eventually(
        &server,
        "the bad certificate is counted and logged",
        || async { server.metric(ERRORS).await >= 1.0 && !logged(&server, &kept).is_empty() },
    )
    .await;
    assert_eq!(served(&server, pki).await, der(first), "still the first");
    // Reported once, not at every poll.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(logged(&server, &kept).len(), 1);
    assert_eq!(server.metric(ERRORS).await, 1.0);
    assert_eq!(server.metric(SUCCESSES).await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_certificate_is_refused_and_the_old_one_kept() {
    let pki = Pki::new("test-ca");
    let first = pki.leaf(&["127.0.0.1"], "first");
    let now = SystemTime::now();
    let expired = leaf_valid(&pki, &["127.0.0.1"], now - 2 * DAY, now - DAY);
    refused_on_reload("expired", &pki, &first, &expired, &[], "expired on").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_not_yet_valid_is_refused_until_it_is() {
    let pki = Pki::new("test-ca");
    let first = pki.leaf(&["127.0.0.1"], "first");
    let now = SystemTime::now();
    let early = leaf_valid(&pki, &["127.0.0.1"], now + 4 * DAY, now + 5 * DAY);
    refused_on_reload("early", &pki, &first, &early, &[], "is not valid before").await;

    // One that becomes valid in a few seconds is served then, with no change
    // on disk and no second error.
    let files = Files::new("soon", &first);
    let server = files.serve(&[]);
    let now = SystemTime::now();
    let soon = leaf_valid(
        &pki,
        &["127.0.0.1"],
        now + Duration::from_secs(5),
        now + DAY,
    );
    files.publish(&soon);
    eventually(&server, "the early certificate is counted", || async {
        server.metric(ERRORS).await >= 1.0
    })
    .await;
    assert_eq!(served(&server, &pki).await, der(&first));
    eventually(&server, "the certificate is served once valid", || async {
        served(&server, &pki).await == der(&soon)
    })
    .await;
    assert_eq!(server.metric(ERRORS).await, 1.0);
    assert_eq!(server.metric(SUCCESSES).await, 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_without_the_listed_names_is_refused() {
    let pki = Pki::new("test-ca");
    // A wildcard covers a listed name, as webpki matches it.
    let first = pki.leaf(
        &["127.0.0.1", "localhost", "*.gracehook-system.svc"],
        "first",
    );
    let bad = pki.leaf(&["127.0.0.1", "localhost", "*.default.svc"], "bad");
    let names = [
        "--tls-server-names",
        "localhost,gracehook.gracehook-system.svc",
    ];
    refused_on_reload(
        "names",
        &pki,
        &first,
        &bad,
        &names,
        "not valid for gracehook.gracehook-system.svc (listed in --tls-server-names)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renewal_must_keep_the_names_served() {
    let pki = Pki::new("test-ca");
    let first = pki.leaf(&["127.0.0.1", "localhost", "gracehook.example"], "first");
    let fewer = pki.leaf(&["127.0.0.1", "localhost"], "fewer");
    refused_on_reload(
        "renewal",
        &pki,
        &first,
        &fewer,
        &[],
        "not valid for gracehook.example (covered by the certificate being replaced)",
    )
    .await;

    let files = Files::new("renewal-more", &first);
    let server = files.serve(&[]);
    let more = pki.leaf(
        &["127.0.0.1", "localhost", "gracehook.example", "new.example"],
        "more",
    );
    files.publish(&more);
    eventually(&server, "a renewal with more names is served", || async {
        served(&server, &pki).await == der(&more)
    })
    .await;
    assert_eq!(server.metric(ERRORS).await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_with_a_malformed_intermediate_is_refused_naming_the_file() {
    let pki = Pki::new("test-ca");
    let first = pki.leaf(&["127.0.0.1"], "first");
    let second = pki.leaf(&["127.0.0.1"], "second");
    // The intermediate cut short: its END line is missing.
    let truncated = &pki.ca_pem[..pki.ca_pem.len() / 2];
    let bad = Leaf {
        cert_pem: format!("{}{truncated}", second.cert_pem),
        key_pem: second.key_pem.clone(),
    };
    refused_on_reload("malformed", &pki, &first, &bad, &[], "certificate number 2").await;
}

/// Runs `serve` expecting it to stop at start-up; its exit code and stderr.
fn start_up_failure(args: &[&str]) -> (Option<i32>, String) {
    let mut command = serve_command(args);
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve {args:?} started instead of refusing its certificate");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn start_up_refuses_an_expired_or_wrongly_named_certificate_naming_the_file() {
    let pki = Pki::new("test-ca");
    let now = SystemTime::now();
    let expired = leaf_valid(&pki, &["127.0.0.1"], now - 2 * DAY, now - DAY);
    let files = Files::new("start-expired", &expired);
    let (code, stderr) = start_up_failure(&["--tls-cert", &files.cert, "--tls-key", &files.key]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&files.cert) && stderr.contains("expired on"),
        "{stderr}"
    );

    let local = pki.leaf(&["127.0.0.1", "localhost"], "local");
    let files = Files::new("start-names", &local);
    let (code, stderr) = start_up_failure(&[
        "--tls-cert",
        &files.cert,
        "--tls-key",
        &files.key,
        "--tls-server-names",
        "gracehook.gracehook-system.svc",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&files.cert)
            && stderr.contains("not valid for gracehook.gracehook-system.svc"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_update_is_read_again_not_counted() {
    let pki = Pki::new("test-ca");
    let first = pki.leaf(&["127.0.0.1"], "first");
    let files = Files::new("torn", &first);
    let server = files.serve(&[]);
    let second = pki.leaf(&["127.0.0.1"], "second");

    // The new certificate with the old key, as a poll can read them while the
    // kubelet swaps `..data`: the server waits and reads both again.
    write(Path::new(&files.cert), &second.cert_pem);
    eventually(&server, "the torn pair is read again", || async {
        !logged(&server, &["reading them again"]).is_empty()
    })
    .await;
    write(Path::new(&files.key), &second.key_pem);
    eventually(&server, "the new certificate is served", || async {
        served(&server, &pki).await == der(&second)
    })
    .await;
    assert_eq!(server.metric(ERRORS).await, 0.0, "{:#?}", server.logs());
    assert_eq!(server.metric(SUCCESSES).await, 1.0);
    assert!(files.dir.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_ca_is_reloaded_without_a_restart() {
    let pki = Pki::new("serving-ca");
    let old_ca = Pki::new("old-client-ca");
    let new_ca = Pki::new("new-client-ca");
    let files = Files::new("client-ca", &pki.leaf(&["127.0.0.1"], "gracehook"));
    let ca = files.dir.join("client-ca.crt");
    write(&ca, &old_ca.ca_pem);
    let server = files.serve(&["--client-ca", ca.to_str().unwrap()]);
    let old_client = old_ca.leaf(&[], "old-apiserver");
    let new_client = new_ca.leaf(&[], "new-apiserver");
    let accepted = |client: &Leaf| {
        let config = client_config(&[&pki.ca_pem], Some(client), H1);
        let addr = server.addr;
        async move {
            match Conn::open(addr, config).await {
                // With TLS 1.3 the client finishes first; a refusal arrives on first use.
                Ok((mut conn, _)) => conn.send("GET", "/healthz", None, Vec::new()).await.is_ok(),
                Err(_) => false,
            }
        }
    };
    assert!(accepted(&old_client).await);
    assert!(
        !accepted(&new_client).await,
        "a stranger's client is refused"
    );

    // A file that is no CA: counted, and the old CA kept.
    write(&ca, "not a certificate\n");
    let kept = ["kept the previous client CA", "no CA certificate found"];
    eventually(&server, "the bad CA is counted and logged", || async {
        server.metric(ERRORS).await >= 1.0 && !logged(&server, &kept).is_empty()
    })
    .await;
    assert!(accepted(&old_client).await, "the old CA still verifies");

    write(&ca, &new_ca.ca_pem);
    eventually(&server, "the new CA's client is accepted", || async {
        accepted(&new_client).await
    })
    .await;
    assert!(
        !accepted(&old_client).await,
        "the old CA no longer verifies"
    );
    assert_eq!(server.metric(ERRORS).await, 1.0);
    assert_eq!(server.metric(SUCCESSES).await, 1.0);
}
