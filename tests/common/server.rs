//! A real `gracehook serve` process and a real TLS client for it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A CA and what it signs, written as PEM files.
pub struct Pki {
    ca_key: KeyPair,
    ca_params: CertificateParams,
    pub ca_pem: String,
}

pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.clone().self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            ca_key: key,
            ca_params: params,
        }
    }

    pub fn leaf(&self, names: &[&str], common_name: &str) -> Leaf {
        self.leaf_until(names, common_name, 2100)
    }

    /// A leaf valid until the first of January of `year`.
    pub fn leaf_until(&self, names: &[&str], common_name: &str, year: i32) -> Leaf {
        self.leaf_with(names, common_name, |params| {
            params.not_after = rcgen::date_time_ymd(year, 1, 1);
        })
    }

    /// A leaf with its parameters (validity, say) set by `edit`.
    pub fn leaf_with(
        &self,
        names: &[&str],
        common_name: &str,
        edit: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        edit(&mut params);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gracehook-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// `gracehook serve` on free ports with JSON logs and `args`, in none of the
/// caller's `GRACEHOOK_` variables.
pub fn serve_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gracehook"));
    command
        .arg("serve")
        .args([
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .args(args)
        .stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("GRACEHOOK_") {
            command.env_remove(key);
        }
    }
    command
}

/// A running `gracehook serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub metrics: SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let mut command = serve_command(args);
        command
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("gracehook serve starts");
        let stdout = child.stdout.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let parsed = serde_json::from_str::<Value>(&line).unwrap_or_default();
                if parsed["message"] == "serving admission webhook" {
                    let _ = tx.send((
                        parsed["addr"].as_str().unwrap_or_default().to_string(),
                        parsed["metrics"].as_str().unwrap_or_default().to_string(),
                    ));
                }
                sink.lock().unwrap().push(line);
            }
        });
        let (addr, metrics) = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("server did not start; logs: {:?}", logs.lock().unwrap()));
        Server {
            child,
            addr: addr.parse().unwrap(),
            metrics: metrics.parse().unwrap(),
            logs,
        }
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub async fn ops_get(&self, path: &str) -> (u16, String) {
        ops_get(self.metrics, path).await
    }

    /// The value of one sample of /metrics, e.g.
    /// `gracehook_admission_requests_total{path="/mutate",outcome="patched"}`.
    pub async fn metric(&self, sample: &str) -> f64 {
        let (_, text) = self.ops_get("/metrics").await;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(sample)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client_config(
    ca_pems: &[&str],
    identity: Option<&Leaf>,
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for pem in ca_pems {
        for cert in rustls_pemfile_certs(pem) {
            roots.add(cert).unwrap();
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(leaf) => {
            use rustls::pki_types::pem::PemObject;
            let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
            builder
                .with_client_auth_cert(rustls_pemfile_certs(&leaf.cert_pem), key)
                .unwrap()
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Every connection does a full handshake, so it sees the certificate
    // served now rather than the one of a resumed session.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

fn rustls_pemfile_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(Result::unwrap)
        .collect()
}

/// One client connection, HTTP/1.1 or HTTP/2 as negotiated by ALPN.
pub enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub version: hyper::Version,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Conn {
    pub async fn open(
        addr: SocketAddr,
        config: Arc<ClientConfig>,
    ) -> Result<(Conn, Vec<u8>), String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = ServerName::IpAddress(addr.ip().into());
        let tls = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (_, session) = tls.get_ref();
        let leaf = session
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let h2 = session.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        let conn = if h2 {
            let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            Conn::H2(sender)
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            Conn::H1(sender)
        };
        Ok((conn, leaf))
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Reply, String> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("https://127.0.0.1{path}"));
        if let Conn::H1(_) = self {
            request = request.header("host", "127.0.0.1");
        }
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        // Wait until the connection can take a request: right after a
        // response, hyper's client may not have gone back to idle yet.
        let response = match self {
            Conn::H1(s) => match s.ready().await {
                Ok(()) => s.send_request(request).await,
                Err(e) => Err(e),
            },
            Conn::H2(s) => match s.ready().await {
                Ok(()) => s.send_request(request).await,
                Err(e) => Err(e),
            },
        }
        .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let version = response.version();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes()
            .to_vec();
        Ok(Reply {
            status,
            body,
            version,
        })
    }

    pub async fn review(&mut self, path: &str, review: &Value) -> Result<Reply, String> {
        self.send(
            "POST",
            path,
            Some("application/json"),
            serde_json::to_vec(review).unwrap(),
        )
        .await
    }
}

/// A running server with a fresh CA and a serving certificate for 127.0.0.1,
/// plus `extra` arguments.
pub fn tls_server(name: &str, extra: &[&str]) -> (Pki, Server) {
    let dir = temp_dir(name);
    let pki = Pki::new("test-ca");
    let leaf = pki.leaf(&["127.0.0.1", "localhost"], "gracehook");
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    write(&cert, &leaf.cert_pem);
    write(&key, &leaf.key_pem);
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let mut args = vec!["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    (pki, server)
}

/// A GET on the operations port at `addr`: the status and the body.
pub async fn ops_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A TLS connection to `addr` that has done its handshake and nothing else:
/// what a hostile client holds.
pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::IpAddress(addr.ip().into());
    TlsConnector::from(config).connect(name, tcp).await.unwrap()
}
