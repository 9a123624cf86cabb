//! The webhook receiver the runs point their definitions at: an HTTPS server on 127.0.0.1
//! whose certificate a throwaway CA signed (the server is told to trust that CA), which
//! checks each delivery's signature with the secret, notes when it arrived, and tells a
//! waiting run when an execution's `execution.completed` event has been verified.

use crate::error::BenchError;
use crate::server::TempDir;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use serde_json::Value;
use sha2::Sha256;
use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// The secret every bench definition's `webhookConfig` carries.
pub const SECRET: &str = "whsec-bench-6f1d2c9a4b7e0385";
/// Bytes of a delivery's body read at most; Assent's bodies are far smaller.
const BODY_MAX: usize = 1024 * 1024;

/// One delivery as the receiver saw it.
pub struct Arrival {
    /// The request's path: each run sends its events to a path of its own.
    pub path: String,
    pub execution_id: String,
    pub event_id: String,
    pub event_type: String,
    /// `x-velt-attempt`; `None` when it is missing or not a number.
    pub attempt: Option<u32>,
    /// The signature is the HMAC of the body with [`SECRET`], and `x-velt-event-id` names
    /// the body's event.
    pub verified: bool,
    /// From the event's `timestamp` (whole milliseconds) to when its body had been read.
    pub latency: Duration,
}

/// Where a waited-for `execution.completed` stands.
enum Completion {
    Awaited(oneshot::Sender<()>),
    Arrived,
}

#[derive(Default)]
struct Log {
    arrivals: Vec<Arrival>,
    completions: HashMap<String, Completion>,
}

/// A running receiver; it stops when dropped.
pub struct Receiver {
    /// `https://127.0.0.1:<port>`.
    pub base_url: String,
    /// The CA's certificate, for the server's `--webhook-ca-file`.
    pub ca_file: PathBuf,
    log: Arc<Mutex<Log>>,
    accepting: JoinHandle<()>,
    _dir: TempDir,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Receiver {
    pub async fn start() -> Result<Receiver, BenchError> {
        let dir = TempDir::new()?;
        let (ca_pem, tls) = throwaway_ca()?;
        let ca_file = dir.0.join("receiver-ca.pem");
        std::fs::write(&ca_file, ca_pem)
            .map_err(|e| BenchError::Server(format!("{}: {e}", ca_file.display())))?;

        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(receiver_error)?;
        let addr = listener.local_addr().map_err(receiver_error)?;
        let log = Arc::new(Mutex::new(Log::default()));
        let accepting = tokio::spawn(accept(listener, TlsAcceptor::from(tls), log.clone()));
        Ok(Receiver { base_url: format!("https://{addr}"), ca_file, log, accepting, _dir: dir })
    }

    /// Resolves once a verified `execution.completed` of the execution has arrived (at
    /// once if it already has). Ask once per execution.
    pub fn completed(&self, execution_id: &str) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        let mut log = lock(&self.log);
        match log.completions.remove(execution_id) {
            Some(Completion::Arrived) => {
                let _ = sender.send(());
            }
            _ => {
                log.completions.insert(execution_id.to_owned(), Completion::Awaited(sender));
            }
        }
        receiver
    }

    /// The arrivals at `path` so far, in the order they arrived; they are forgotten here.
    pub fn take(&self, path: &str) -> Vec<Arrival> {
        let mut log = lock(&self.log);
        let (taken, kept) =
            std::mem::take(&mut log.arrivals).into_iter().partition(|a| a.path == path);
        log.arrivals = kept;
        log.completions.retain(|_, completion| matches!(completion, Completion::Awaited(_)));
        taken
    }

    /// Arrivals anywhere whose signature did not hold.
    pub fn unverified(&self) -> usize {
        lock(&self.log).arrivals.iter().filter(|a| !a.verified).count()
    }
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn receiver_error(e: impl std::fmt::Display) -> BenchError {
    BenchError::Server(format!("webhook receiver: {e}"))
}

/// A CA made for this bench, and the TLS setup of a certificate it signed for 127.0.0.1.
fn throwaway_ca() -> Result<(String, Arc<ServerConfig>), BenchError> {
    let ca_key = KeyPair::generate().map_err(receiver_error)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(receiver_error)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "assent-bench throwaway CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = ca_params.self_signed(&ca_key).map_err(receiver_error)?;

    let key = KeyPair::generate().map_err(receiver_error)?;
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).map_err(receiver_error)?;
    let certificate = params.signed_by(&key, &ca, &ca_key).map_err(receiver_error)?;

    let chain = vec![CertificateDer::from(certificate.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(receiver_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(receiver_error)?;
    Ok((ca.pem(), Arc::new(tls)))
}

async fn accept(listener: TcpListener, tls: TlsAcceptor, log: Arc<Mutex<Log>>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let _ = tcp.set_nodelay(true);
        let (tls, log) = (tls.clone(), log.clone());
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(tcp).await else { return };
            let service = service_fn(move |request| {
                let log = log.clone();
                async move { Ok::<_, Infallible>(receive(request, &log).await) }
            });
            let builder = hyper::server::conn::http1::Builder::new();
            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// Records one delivery. A bad signature is answered 401, as a real receiver would; the
/// run's checks report it.
async fn receive(request: Request<Incoming>, log: &Mutex<Log>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header("x-velt-signature").map(str::to_owned);
    let event_id_header = header("x-velt-event-id").map(str::to_owned);
    let attempt = header("x-velt-attempt").and_then(|v| v.parse().ok());
    let Ok(body) = Limited::new(body, BODY_MAX).collect().await.map(|b| b.to_bytes()) else {
        return answer(400);
    };
    let received_us = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros();

    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let text = |key: &str| event[key].as_str().unwrap_or_default().to_owned();
    let event_id = text("eventId");
    let signed = signature.as_deref().is_some_and(|s| signature_holds(&body, s));
    let verified = signed && event_id_header.as_deref() == Some(event_id.as_str());
    let stamped_us = u128::from(event["timestamp"].as_u64().unwrap_or(0)) * 1000;
    let arrival = Arrival {
        path: parts.uri.path().to_owned(),
        execution_id: text("executionId"),
        event_id,
        event_type: text("type"),
        attempt,
        verified,
        latency: Duration::from_micros(received_us.saturating_sub(stamped_us) as u64),
    };

    let completes = verified && arrival.event_type == "execution.completed";
    let mut log = lock(log);
    if completes {
        let waiter = log.completions.remove(&arrival.execution_id);
        match waiter {
            Some(Completion::Awaited(sender)) => {
                let _ = sender.send(());
            }
            _ => {
                log.completions.insert(arrival.execution_id.clone(), Completion::Arrived);
            }
        }
    }
    log.arrivals.push(arrival);
    answer(if verified { 200 } else { 401 })
}

fn answer(status: u16) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    response
}

/// Whether `header` is `sha256=` and the lowercase hex HMAC-SHA256 of `body` keyed by
/// [`SECRET`].
fn signature_holds(body: &[u8], header: &str) -> bool {
    let Some(hex_mac) = header.strip_prefix("sha256=") else { return false };
    let lowercase = hex_mac.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let Ok(given) = hex::decode(hex_mac) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()) else { return false };
    mac.update(body);
    lowercase && mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac_hex(body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn only_the_lowercase_hmac_of_the_exact_body_holds() {
        let body = br#"{"eventId":"evt_x_1"}"#;
        let good = format!("sha256={}", mac_hex(body));
        assert!(signature_holds(body, &good));
        assert!(!signature_holds(br#"{"eventId":"evt_x_2"}"#, &good));
        assert!(!signature_holds(body, &good.to_uppercase().replace("SHA256", "sha256")));
        assert!(!signature_holds(body, &mac_hex(body)));
        assert!(!signature_holds(body, "sha256="));
    }
}
