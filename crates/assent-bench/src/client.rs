//! The bench's HTTP client: `{"data": ...}` in, the `result` out, with one workspace's
//! credentials. It speaks HTTP/1.1 with hyper's connection API over a small pool of kept-alive
//! connections: the client shares the machine's cores with the server, so it should cost as
//! little as it can (reqwest cost about a third more CPU per request here).

use crate::error::BenchError;
use crate::server::Credentials;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;

/// How long one request may take before the run counts it as lost.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept for reuse; more than the most connections any run opens.
const IDLE_CONNECTIONS_MAX: usize = 256;

#[derive(Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

struct Inner {
    /// `host:port` of the server.
    authority: String,
    api_key: String,
    auth_token: String,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl Api {
    /// A client of the server at `base_url` (`http://host:port`).
    pub fn new(base_url: &str, creds: &Credentials) -> Result<Api, BenchError> {
        let Some(authority) = base_url.strip_prefix("http://") else {
            return Err(BenchError::Server(format!("not an http:// address: {base_url}")));
        };
        let inner = Inner {
            authority: authority.to_owned(),
            api_key: creds.api_key.clone(),
            auth_token: creds.auth_token.clone(),
            idle: Mutex::new(Vec::new()),
        };
        Ok(Api { inner: Arc::new(inner) })
    }

    /// POSTs `{"data": data}` to `/v2/workflow/<path>`; any answer but 200 is an error.
    pub async fn call(&self, path: &str, data: Value) -> Result<Value, BenchError> {
        let body = json!({ "data": data }).to_string();
        let sent = tokio::time::timeout(REQUEST_TIMEOUT, self.post(path, body)).await;
        let (status, body) = sent.map_err(|_| http_error(path, "timed out"))??;
        let answer = |body: &[u8]| String::from_utf8_lossy(body).into_owned();
        if status != 200 {
            return Err(BenchError::Answer { path: path.to_owned(), status, body: answer(&body) });
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(mut envelope)) if envelope.contains_key("result") => {
                Ok(envelope.remove("result").unwrap_or(Value::Null))
            }
            _ => Err(BenchError::Answer { path: path.to_owned(), status, body: answer(&body) }),
        }
    }

    async fn post(&self, path: &str, body: String) -> Result<(u16, Bytes), BenchError> {
        let inner = &self.inner;
        let request = hyper::Request::post(format!("/v2/workflow/{path}"))
            .header("host", &inner.authority)
            .header("content-type", "application/json")
            .header("x-velt-api-key", &inner.api_key)
            .header("x-velt-auth-token", &inner.auth_token)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| http_error(path, e))?;
        let mut connection = self.connection(path).await?;
        let response = connection.send_request(request).await.map_err(|e| http_error(path, e))?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(|e| http_error(path, e))?;
        self.release(connection);
        Ok((status, body.to_bytes()))
    }

    /// An idle kept-alive connection, or a new one.
    async fn connection(&self, path: &str) -> Result<SendRequest<Full<Bytes>>, BenchError> {
        loop {
            let idle = self.inner.idle.lock().map_err(|_| http_error(path, "pool poisoned"))?.pop();
            let Some(mut connection) = idle else { break };
            if connection.ready().await.is_ok() {
                return Ok(connection);
            }
        }
        let stream = TcpStream::connect(&self.inner.authority).await;
        let stream = stream.map_err(|e| http_error(path, e))?;
        stream.set_nodelay(true).map_err(|e| http_error(path, e))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| http_error(path, e))?;
        tokio::spawn(connection);
        Ok(sender)
    }

    fn release(&self, connection: SendRequest<Full<Bytes>>) {
        if let Ok(mut idle) = self.inner.idle.lock() {
            if idle.len() < IDLE_CONNECTIONS_MAX {
                idle.push(connection);
            }
        }
    }
}

fn http_error(path: &str, detail: impl std::fmt::Display) -> BenchError {
    BenchError::Http { path: path.to_owned(), detail: detail.to_string() }
}

/// The string at `value[key]`, or an error that names the call.
pub fn text(value: &Value, key: &str, what: &str) -> Result<String, BenchError> {
    match value[key].as_str() {
        Some(s) => Ok(s.to_owned()),
        None => Err(BenchError::Violation(format!("{what} answered without {key}: {value}"))),
    }
}
