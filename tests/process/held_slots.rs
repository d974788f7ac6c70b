//! Clients that hold a connection slot without finishing a request — silent
//! after the TLS handshake, silent before it, trickling a body, or keeping
//! unfinished requests open on the operations port — are cut off by the
//! server's deadlines, so a well-behaved client is answered
//! (`docs/operations.md`, "Connection limits"). Before the deadlines
//! existed, each of these held its slots forever.

use std::time::Duration;

use crate::common::server::{Conn, Server, client_config, tls_connect, tls_server};
use crate::common::{review_for, web_pod};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const H1: &[&[u8]] = &[b"http/1.1"];
const H2: &[&[u8]] = &[b"h2"];

/// Longer than the first-request (10 s) and body (10 s) deadlines, with
/// room for a loaded machine; far shorter than "forever".
const ANSWERED_WITHIN: Duration = Duration::from_secs(25);

/// A good client's review, on a new connection, answered within the limit.
async fn good_client_is_answered(server: &Server, alpn: &[&[u8]], pki_ca: &str) {
    let config = client_config(&[pki_ca], None, alpn);
    let answered = tokio::time::timeout(ANSWERED_WITHIN, async {
        let (mut conn, _) = Conn::open(server.addr, config).await.unwrap();
        conn.review("/mutate", &review_for(&web_pod(json!({})), "shop"))
            .await
            .unwrap()
    })
    .await
    .expect("a good client was answered while hostile clients held every slot");
    assert_eq!(answered.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_silent_after_the_handshake_lose_their_slots() {
    for alpn in [H1, H2] {
        let (pki, server) = tls_server("silent-tls", &["--max-connections", "4"]);
        let config = client_config(&[&pki.ca_pem], None, alpn);
        let mut silent = Vec::new();
        for _ in 0..4 {
            silent.push(tls_connect(server.addr, config.clone()).await);
        }
        good_client_is_answered(&server, alpn, &pki.ca_pem).await;
        drop(silent);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_silent_before_the_handshake_lose_their_slots() {
    let (pki, server) = tls_server("silent-tcp", &["--max-connections", "4"]);
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    good_client_is_answered(&server, H1, &pki.ca_pem).await;
    drop(silent);
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_sent_a_byte_at_a_time_lose_their_slots() {
    let (pki, server) = tls_server("trickle", &["--max-connections", "4"]);
    let config = client_config(&[&pki.ca_pem], None, H1);
    let mut trickles = Vec::new();
    for _ in 0..4 {
        let mut tls = tls_connect(server.addr, config.clone()).await;
        trickles.push(tokio::spawn(async move {
            let head = b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n";
            if tls.write_all(head).await.is_err() {
                return;
            }
            // One byte every 2 s: under any per-read timeout, never done.
            for _ in 0..60 {
                if tls.write_all(b" ").await.is_err() || tls.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    good_client_is_answered(&server, H1, &pki.ca_pem).await;
    for t in trickles {
        t.abort();
    }
    let timeouts = server
        .metric(r#"gracehook_admission_requests_total{path="/mutate",outcome="timeout"}"#)
        .await;
    assert!(timeouts >= 1.0, "no body timeout counted: {timeouts}");
}

/// The operations port has a cap too, and its deadlines free it: 150
/// unfinished requests leave it at most at its cap, and it answers again
/// once they are cut off.
#[tokio::test(flavor = "multi_thread")]
async fn unfinished_requests_to_the_operations_port_are_bounded_and_cut_off() {
    let (_pki, server) = tls_server("ops-flood", &[]);
    let fds = |server: &Server| {
        std::fs::read_dir(format!("/proc/{}/fd", server.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let before = fds(&server);
    let mut held = Vec::new();
    for _ in 0..150 {
        let mut tcp = TcpStream::connect(server.metrics).await.unwrap();
        let _ = tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
        held.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = fds(&server);
    assert!(
        during <= before + 64 + 2,
        "{during} descriptors with 150 unfinished requests (before: {before}): no cap"
    );
    let answered = tokio::time::timeout(Duration::from_secs(60), server.ops_get("/readyz"))
        .await
        .expect("the operations port answered again once the held requests were cut off");
    assert_eq!(answered.0, 200);
    drop(held);
}
