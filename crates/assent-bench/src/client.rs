//! The bench's HTTP client: `{"data": ...}` in, the `result` out, with one workspace's
//! credentials.

use crate::error::BenchError;
use crate::server::Credentials;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// How long one request may take before the run counts it as lost.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base_url: Arc<str>,
    api_key: Arc<str>,
    auth_token: Arc<str>,
}

impl Api {
    pub fn new(base_url: &str, creds: &Credentials) -> Result<Api, BenchError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .map_err(|source| BenchError::Http { path: "client".into(), source })?;
        Ok(Api {
            http,
            base_url: format!("{base_url}/v2/workflow").into(),
            api_key: creds.api_key.as_str().into(),
            auth_token: creds.auth_token.as_str().into(),
        })
    }

    /// POSTs `{"data": data}` to `/v2/workflow/<path>`; any answer but 200 is an error.
    pub async fn call(&self, path: &str, data: Value) -> Result<Value, BenchError> {
        let http_error = |source| BenchError::Http { path: path.to_owned(), source };
        let response = self
            .http
            .post(format!("{}/{path}", self.base_url))
            .header("content-type", "application/json")
            .header("x-velt-api-key", &*self.api_key)
            .header("x-velt-auth-token", &*self.auth_token)
            .body(json!({ "data": data }).to_string())
            .send()
            .await
            .map_err(http_error)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(http_error)?;
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
}

/// The string at `value[key]`, or an error that names the call.
pub fn text(value: &Value, key: &str, what: &str) -> Result<String, BenchError> {
    match value[key].as_str() {
        Some(s) => Ok(s.to_owned()),
        None => Err(BenchError::Violation(format!("{what} answered without {key}: {value}"))),
    }
}
