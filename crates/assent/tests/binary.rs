//! The `assent` binary as an operator meets it: the admin commands, first start, and a clean
//! stop on SIGTERM.

mod common;

use common::TempDir;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

fn assent(dir: &TempDir) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_assent"));
    cmd.env_remove("ASSENT_DATABASE_URL").env("ASSENT_DATA_DIR", &dir.0);
    cmd
}

fn json_output(cmd: &mut Command) -> Value {
    let out = cmd.output().expect("assent runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "assent failed: {stderr}");
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON value")
}

#[test]
fn admin_commands_print_json_and_credentials_work_until_revoked() {
    let dir = TempDir::new("cli");
    let created = json_output(assent(&dir).args(["workspace", "create", "--name", "acme"]));
    let ws = created["workspaceId"].as_str().unwrap().to_owned();
    assert!(created["apiKey"].as_str().unwrap().starts_with("ak_"));
    assert!(created["authToken"].as_str().unwrap().starts_with("at_"));

    let key = json_output(assent(&dir).args(["key", "create", "--workspace", &ws]));
    let token = json_output(assent(&dir).args(["token", "create", "--workspace", &ws]));
    assert_eq!(
        (&key["workspaceId"], &token["workspaceId"]),
        (&created["workspaceId"], &created["workspaceId"])
    );

    let list = json_output(assent(&dir).args(["workspace", "list"]));
    assert_eq!(list[0]["name"], "acme");
    assert_eq!(
        (list[0]["liveApiKeys"].as_i64(), list[0]["liveAuthTokens"].as_i64()),
        (Some(2), Some(2))
    );

    let api_key = key["apiKey"].as_str().unwrap();
    json_output(assent(&dir).args(["key", "revoke", api_key]));
    let again = assent(&dir).args(["key", "revoke", api_key]).output().unwrap();
    assert!(!again.status.success(), "a revoked key cannot be revoked twice");

    let unknown =
        assent(&dir).args(["token", "create", "--workspace", "ws_nope"]).output().unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not found"));
}

/// Starts `assent serve` on a free port; returns the child and the address it listens on.
fn start_server(dir: &TempDir) -> (Child, String) {
    let mut child = assent(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("assent serve starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("server logs before exiting").unwrap();
        if let Some(rest) = line.split("listen=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

fn stop(mut child: Child) -> (bool, String) {
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    (status.success(), stdout)
}

#[test]
fn first_start_prints_credentials_once_and_sigterm_stops_cleanly() {
    let dir = TempDir::new("serve");
    let (child, addr) = start_server(&dir);
    let health = std::net::TcpStream::connect(&addr);
    assert!(health.is_ok(), "the server accepts connections on {addr}");
    let (clean, stdout) = stop(child);
    assert!(clean, "SIGTERM ends the process with success");

    let printed: Value = serde_json::from_str(stdout.trim()).expect("one JSON line on stdout");
    assert!(printed["apiKey"].as_str().unwrap().starts_with("ak_"));
    let file = dir.0.join("initial-credentials.json");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved, printed);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    let (child, _) = start_server(&dir);
    let (clean, stdout) = stop(child);
    assert!(clean);
    assert_eq!(stdout.trim(), "", "a store with a workspace prints no credentials");
}

#[test]
fn no_bootstrap_leaves_an_empty_store_empty() {
    let dir = TempDir::new("nobootstrap");
    let mut child = assent(&dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-bootstrap"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap().contains("listen=")));
    std::thread::spawn(move || lines.for_each(drop));
    let (clean, _) = stop(child);
    assert!(clean);
    let list = json_output(assent(&dir).args(["workspace", "list"]));
    assert_eq!(list, Value::Array(vec![]));
}

/// The lines `assent serve` logs up to and including its `listen=` line.
fn log_until_listening(child: &mut Child) -> Vec<String> {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let listening = line.contains("listen=");
        seen.push(line);
        if listening {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    seen
}

#[test]
fn plain_http_webhooks_are_allowed_only_with_a_warning() {
    let dir = TempDir::new("allowhttp");
    let mut child = assent(&dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-bootstrap"])
        .env("ASSENT_WEBHOOK_ALLOW_HTTP", "1")
        .env("ASSENT_WEBHOOK_ALLOW", "127.0.0.1,hooks.example.test")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = log_until_listening(&mut child);
    let (clean, _) = stop(child);
    assert!(clean);
    let warned = log.iter().any(|l| l.contains("WARN") && l.contains("--webhook-allow-http"));
    assert!(warned, "no start-up warning in {log:?}");

    let mut quiet = assent(&dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-bootstrap"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = log_until_listening(&mut quiet);
    stop(quiet);
    assert!(!log.iter().any(|l| l.contains("--webhook-allow-http")), "{log:?}");
}

#[test]
fn bad_webhook_options_stop_the_server_with_a_reason() {
    let dir = TempDir::new("badallow");
    let cases: [(&[&str], &str); 3] = [
        (&["--webhook-allow", "10.0.0.0/33"], "--webhook-allow"),
        (&["--webhook-allow", "https://x.example/"], "--webhook-allow"),
        (&["--webhook-ca-file", "/nonexistent/ca.pem"], "--webhook-ca-file"),
    ];
    for (flags, named) in cases {
        let out = assent(&dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--no-bootstrap"])
            .args(flags)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flags:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{flags:?}: {stderr}");
    }
    let not_pem = dir.0.join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let out = assent(&dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-bootstrap", "--webhook-ca-file"])
        .arg(&not_pem)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a CA file without certificates was accepted");
}
