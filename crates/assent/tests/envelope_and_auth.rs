//! The envelope, the body limit and the credential checks, over HTTP.

mod common;

use assent_store::Store;
use common::{send, send_json, spawn_app, TestApp};
use serde_json::{json, Value};

fn post(app: &TestApp, path: &str) -> reqwest::RequestBuilder {
    app.http.post(format!("{}/v2/workflow/{path}", app.base_url))
}

fn authed(app: &TestApp, path: &str) -> reqwest::RequestBuilder {
    post(app, path)
        .header("x-velt-api-key", &app.creds.api_key)
        .header("x-velt-auth-token", &app.creds.auth_token)
}

const GET_BODY: &str = r#"{"data":{"definitionId":"nope-nope"}}"#;

#[tokio::test]
async fn credentials_are_checked_in_order() {
    let app = spawn_app().await;
    let body: Value = serde_json::from_str(GET_BODY).unwrap();

    let no_key = send_json(post(&app, "definitions/get"), &body).await;
    no_key.error(401, "UNAUTHENTICATED");

    let unknown_key = post(&app, "definitions/get").header("x-velt-api-key", "ak_nope");
    send_json(unknown_key, &body).await.error(401, "UNAUTHENTICATED");

    let no_token = post(&app, "definitions/get").header("x-velt-api-key", &app.creds.api_key);
    let msg = send_json(no_token, &body).await.error(400, "INVALID_ARGUMENT");
    assert_eq!(msg, "Auth token is required");

    let bad_token = post(&app, "definitions/get")
        .header("x-velt-api-key", &app.creds.api_key)
        .header("x-velt-auth-token", "at_wrong");
    send_json(bad_token, &body).await.error(403, "PERMISSION_DENIED");

    // Only with good credentials is the body looked at.
    let good = send_json(authed(&app, "definitions/get"), &body).await;
    good.error(404, "NOT_FOUND");
}

#[tokio::test]
async fn a_token_of_another_workspace_or_a_revoked_one_is_refused() {
    let app = spawn_app().await;
    let other = app.other_workspace().await;
    let body: Value = serde_json::from_str(GET_BODY).unwrap();

    let mixed = post(&app, "definitions/get")
        .header("x-velt-api-key", &app.creds.api_key)
        .header("x-velt-auth-token", &other.auth_token);
    send_json(mixed, &body).await.error(403, "PERMISSION_DENIED");

    app.store.revoke_auth_token(&app.creds.auth_token, common::T0_MS).await.unwrap();
    send_json(authed(&app, "definitions/get"), &body).await.error(403, "PERMISSION_DENIED");

    app.store.revoke_api_key(&other.api_key, common::T0_MS).await.unwrap();
    let revoked_key = post(&app, "definitions/get")
        .header("x-velt-api-key", &other.api_key)
        .header("x-velt-auth-token", &other.auth_token);
    send_json(revoked_key, &body).await.error(401, "UNAUTHENTICATED");
}

#[tokio::test]
async fn malformed_bodies_are_invalid_arguments_that_name_the_problem() {
    let app = spawn_app().await;
    let cases: [(&str, &str); 6] = [
        ("{not json", "Malformed JSON"),
        ("[]", "Expected object"),
        ("{}", "Required for data"),
        (r#"{"data": []}"#, "Expected object, received array for data"),
        (r#"{"data": {}, "extra": 1}"#, "Unrecognized key(s) in object: 'extra'"),
        (r#"{"data": {"definitionId": 7}}"#, "Expected string, received number for definitionId"),
    ];
    for (body, expected) in cases {
        let req = authed(&app, "definitions/get").header("content-type", "application/json");
        let answer = send(req.body(body)).await;
        let msg = answer.error(400, "INVALID_ARGUMENT");
        assert!(msg.starts_with(expected), "{body}: {msg}");
        assert!(answer.body["error"]["details"]["issues"].is_array(), "{body}");
    }
}

#[tokio::test]
async fn a_wrong_content_type_is_refused() {
    let app = spawn_app().await;
    let req = authed(&app, "definitions/get").header("content-type", "text/plain").body(GET_BODY);
    let msg = send(req).await.error(400, "INVALID_ARGUMENT");
    assert_eq!(msg, "Content-Type must be application/json");
    let missing = authed(&app, "definitions/get").body(GET_BODY);
    send(missing).await.error(400, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn bodies_over_one_mebibyte_get_413_before_parsing() {
    let app = spawn_app().await;
    let padding = "x".repeat(1024 * 1024);
    let huge = json!({ "data": { "definitionId": "abc", "custom": { "pad": padding } } });
    let answer = send_json(authed(&app, "definitions/create"), &huge).await;
    answer.error(413, "INVALID_ARGUMENT");

    // Exactly at the limit is still read (and then judged on its content).
    let mut at_limit = format!(r#"{{"data":{{"definitionId":"{}"}}}}"#, "");
    at_limit.push_str(&" ".repeat(1024 * 1024 - at_limit.len()));
    let req = authed(&app, "definitions/get").header("content-type", "application/json");
    send(req.body(at_limit)).await.error(400, "INVALID_ARGUMENT");

    // A chunked body without a declared length is cut off at the limit too.
    let status = chunked_post(&app, "definitions/get", 20, 64 * 1024).await;
    assert_eq!(status, 413);
}

/// Sends `chunks` chunks of `chunk_len` spaces with chunked transfer encoding over a raw
/// socket, so no length is declared up front; returns the HTTP status.
async fn chunked_post(app: &TestApp, path: &str, chunks: usize, chunk_len: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base_url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v2/workflow/{path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         x-velt-api-key: {}\r\nx-velt-auth-token: {}\r\ntransfer-encoding: chunked\r\n\r\n",
        app.creds.api_key, app.creds.auth_token
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{chunk_len:x}\r\n{}\r\n", " ".repeat(chunk_len));
    for _ in 0..chunks {
        // The server may answer and close before every chunk is sent.
        if socket.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let mut response = vec![0u8; 12];
    socket.read_exact(&mut response).await.unwrap();
    String::from_utf8_lossy(&response[9..12]).parse().unwrap()
}

#[tokio::test]
async fn unknown_endpoints_answer_in_the_envelope() {
    let app = spawn_app().await;
    let answer = send_json(authed(&app, "definitions/explode"), &json!({"data": {}})).await;
    answer.error(404, "NOT_FOUND");
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let health = send(app.http.get(format!("{}/healthz", app.base_url))).await;
    assert_eq!(health.status, 200);
    let ready = send(app.http.get(format!("{}/readyz", app.base_url))).await;
    assert_eq!((ready.status, &ready.body["status"]), (200, &json!("ready")));
}

#[tokio::test]
async fn v1_paths_answer_like_v2() {
    let app = spawn_app().await;
    let req = app
        .http
        .post(format!("{}/v1/workflow/definitions/list", app.base_url))
        .header("x-velt-api-key", &app.creds.api_key)
        .header("x-velt-auth-token", &app.creds.auth_token);
    let answer = send_json(req, &json!({"data": {}})).await;
    assert_eq!(answer.result()["items"], json!([]));
}
