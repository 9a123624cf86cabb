//! A real HTTPS receiver on 127.0.0.1 for the webhook tests: a throwaway CA whose file the
//! server is told to trust, a TLS listener that records every request, answers as the test
//! scripts it, and can go down and come back on the same port. Signatures are checked with
//! `ring`'s HMAC, not the implementation Assent signs with.

use super::TempDir;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// A certificate authority made for one test, and a server certificate it signed for
/// `127.0.0.1` and `receiver.test`.
pub struct TestCa {
    /// The CA certificate, for `--webhook-ca-file`.
    pub ca_file: PathBuf,
    pub ca_pem: String,
    tls: Arc<ServerConfig>,
    _dir: TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "Assent test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");

        let names = vec!["127.0.0.1".to_owned(), "receiver.test".to_owned()];
        let leaf_key = KeyPair::generate().expect("server key");
        let leaf_params = CertificateParams::new(names).expect("server params");
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).expect("server certificate");

        let chain = vec![CertificateDer::from(leaf.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server TLS config");

        let dir = TempDir::new("ca");
        let ca_pem = ca.pem();
        let ca_file = dir.0.join("test-ca.pem");
        std::fs::write(&ca_file, &ca_pem).expect("CA file written");
        TestCa { ca_file, ca_pem, tls: Arc::new(tls), _dir: dir }
    }
}

impl TestCa {
    /// The TLS server settings with the certificate this CA signed, for other test servers.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.tls.clone()
    }
}

/// What the receiver does with a request.
#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    /// A status with a body of this content type.
    Body(u16, &'static str, String),
    /// A redirect to this location.
    Redirect(u16, String),
    /// Never answers.
    Hang,
    /// Answers 200 with a body that never ends.
    Endless,
}

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }
}

type Script = Box<dyn FnMut(&Received) -> Reply + Send>;

struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<Script>,
    arrived: Notify,
}

pub struct Receiver {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    tls: TlsAcceptor,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.abort();
        }
    }
}

impl Receiver {
    /// Listens on a free port of 127.0.0.1 and answers 200 to everything.
    pub async fn start(ca: &TestCa) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("receiver binds");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            script: Mutex::new(Box::new(|_| Reply::Status(200))),
            arrived: Notify::new(),
        });
        let tls = TlsAcceptor::from(ca.tls.clone());
        let server = tokio::spawn(accept_loop(listener, tls.clone(), shared.clone()));
        Receiver {
            url: format!("https://{addr}"),
            addr,
            shared,
            tls,
            server: Mutex::new(Some(server)),
        }
    }

    /// From now on, answers each request as `script` says.
    pub fn reply_with(&self, script: impl FnMut(&Received) -> Reply + Send + 'static) {
        *self.shared.script.lock().unwrap() = Box::new(script);
    }

    /// Stops listening: connections are refused until `resume`.
    pub fn pause(&self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&self) {
        let listener = TcpListener::bind(self.addr).await.expect("receiver binds again");
        let server = tokio::spawn(accept_loop(listener, self.tls.clone(), self.shared.clone()));
        *self.server.lock().unwrap() = Some(server);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits (at most 20 s of real time) until at least `count` requests have arrived.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let arrived = self.shared.arrived.notified();
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, arrived).await.is_err() {
                panic!("expected {count} requests, the receiver got {}", self.received().len());
            }
        }
    }

    /// Asserts that no further request arrives within `wait` of real time.
    pub async fn assert_quiet(&self, count: usize, wait: Duration) {
        tokio::time::sleep(wait).await;
        let received = self.received();
        assert_eq!(received.len(), count, "unexpected requests: {:?}", paths(&received));
    }
}

fn paths(received: &[Received]) -> Vec<String> {
    received.iter().map(|r| format!("{} {}", r.method, r.path)).collect()
}

async fn accept_loop(listener: TcpListener, tls: TlsAcceptor, shared: Arc<Shared>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let (tls, shared) = (tls.clone(), shared.clone());
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(tcp).await else { return };
            let service = service_fn(move |request| answer(request, shared.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type AnyBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(
    request: hyper::Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<hyper::Response<AnyBody>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let received = Received {
        method: parts.method.to_string(),
        path: parts.uri.to_string(),
        headers,
        body,
        at: Instant::now(),
    };
    let reply = (shared.script.lock().unwrap())(&received);
    shared.received.lock().unwrap().push(received);
    shared.arrived.notify_waiters();
    let builder = hyper::Response::builder();
    let response = match reply {
        Reply::Status(status) => builder.status(status).body(full("")),
        Reply::Body(status, content_type, text) => {
            builder.status(status).header("content-type", content_type).body(full(text))
        }
        Reply::Redirect(status, location) => {
            builder.status(status).header("location", location).body(full(""))
        }
        Reply::Hang => std::future::pending().await,
        Reply::Endless => builder.status(200).body(AnyBody::new(Endless)),
    };
    Ok(response.expect("a valid response"))
}

fn full(text: impl Into<Bytes>) -> AnyBody {
    AnyBody::new(Full::new(text.into()))
}

/// A body of `a`s that never ends.
struct Endless;

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&[b'a'; 16 * 1024])))))
    }
}

/// Whether `header` is `sha256=` and the HMAC-SHA256 of `body` keyed by `secret`, computed
/// with `ring`.
pub fn signature_holds(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_mac) = header.strip_prefix("sha256=") else { return false };
    let Ok(mac) = hex::decode(hex_mac) else { return false };
    if hex_mac.chars().any(|c| c.is_ascii_uppercase()) {
        return false;
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, body, &mac).is_ok()
}
