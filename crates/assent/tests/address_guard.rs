//! The address guard over real paths: URLs refused when they are written (definitions and
//! dispatches) and again when a request is about to be sent, DNS answers included, with a
//! real HTTPS receiver on 127.0.0.1 that must never see a refused request.

mod common;

use assent::outbound::{Failure, Request};
use common::receiver::{Receiver, Reply, TestCa};
use common::{example, spawn_app_opts, AppOptions, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::time::Duration;

/// The receiver's name; the only name the test server is told to allow.
const RECEIVER_NAME: &str = "receiver.test";

async fn guarded_app(ca: &TestCa) -> TestApp {
    let allow = [RECEIVER_NAME, "198.51.100.0/24"];
    let app =
        spawn_app_opts(AppOptions { ca: Some(ca), allow: &allow, ..Default::default() }).await;
    app.resolver.set(RECEIVER_NAME, vec!["127.0.0.1".parse().unwrap()]);
    app
}

/// URLs refused for their spelling alone, each with the words its refusal must contain.
/// `{port}` is the receiver's port, so a guard that let one through would be caught there.
fn literal_forms() -> Vec<(&'static str, &'static str)> {
    vec![
        ("http://{host}/hook", "must use https scheme"),
        ("ftp://{host}/hook", "must use https scheme"),
        ("https://user:pw@{host}/hook", "must not contain a user name or password"),
        ("https://localhost:{port}/hook", r#"host "localhost" is not allowed"#),
        ("https://LocalHost.:{port}/hook", r#"host "localhost" is not allowed"#),
        ("https://hooks.localhost:{port}/", r#"host "hooks.localhost" is not allowed"#),
        ("https://metadata/computeMetadata/v1/", r#"host "metadata" is not allowed"#),
        ("https://metadata.google.internal./", r#"host "metadata.google.internal""#),
        ("https://billing.corp.INTERNAL/", r#"host "billing.corp.internal""#),
        ("https://127.0.0.1:{port}/hook", "(127.0.0.0/8, loopback)"),
        ("https://127.1:{port}/hook", "(127.0.0.0/8, loopback)"),
        ("https://2130706433:{port}/hook", "(127.0.0.0/8, loopback)"),
        ("https://0x7f000001:{port}/hook", "(127.0.0.0/8, loopback)"),
        ("https://0x7f.0.0.1:{port}/hook", "(127.0.0.0/8, loopback)"),
        ("https://0177.0.0.01:{port}/hook", "(127.0.0.0/8, loopback)"),
        ("https://127.000.000.001:{port}/hook", "(127.0.0.0/8, loopback)"),
        ("https://127.0.0.1.:{port}/hook", "(127.0.0.0/8, loopback)"),
        ("https://[::ffff:127.0.0.1]:{port}/hook", "(127.0.0.0/8, loopback)"),
        ("https://[::ffff:7f00:1]:{port}/hook", "(127.0.0.0/8, loopback)"),
        ("https://[0:0:0:0:0:ffff:7f00:0001]:{port}/", "(127.0.0.0/8, loopback)"),
        ("https://[::1]:{port}/hook", "(::1/128, loopback)"),
        ("https://[64:ff9b::7f00:1]:{port}/", "(127.0.0.0/8, loopback)"),
        ("https://[2002:7f00:1::]:{port}/", "(127.0.0.0/8, loopback)"),
        ("https://0.0.0.0:{port}/hook", "(0.0.0.0/8, this network)"),
        ("https://10.0.0.1/", "(10.0.0.0/8, private)"),
        ("https://172.20.1.1/", "(172.16.0.0/12, private)"),
        ("https://192.168.0.10/", "(192.168.0.0/16, private)"),
        ("https://169.254.169.254/latest/meta-data/", "(169.254.0.0/16, link-local)"),
        ("https://100.100.100.200/", "(100.64.0.0/10, shared address space)"),
        ("https://168.63.129.16/", "(168.63.129.16/32, cloud metadata)"),
        ("https://[fd12:3456::1]/", "(fc00::/7, unique-local)"),
        ("https://[fe80::abcd]/", "(fe80::/10, link-local)"),
    ]
}

/// Names whose DNS answers include a refused address: the first answer, or a later one.
fn resolved_forms() -> Vec<(&'static str, Vec<&'static str>, &'static str)> {
    vec![
        ("loop.test", vec!["127.0.0.1"], "(127.0.0.0/8, loopback)"),
        ("loop-high.test", vec!["127.255.0.9"], "(127.0.0.0/8, loopback)"),
        ("mixed.test", vec!["93.184.216.34", "10.0.0.7"], "(10.0.0.0/8, private)"),
        ("mixed-last.test", vec!["8.8.8.8", "1.1.1.1", "192.168.9.9"], "(192.168.0.0/16, private)"),
        ("ten.test", vec!["10.255.255.255"], "(10.0.0.0/8, private)"),
        ("corp.test", vec!["172.31.0.1"], "(172.16.0.0/12, private)"),
        ("home.test", vec!["192.168.1.1"], "(192.168.0.0/16, private)"),
        ("meta.test", vec!["169.254.169.254"], "(169.254.0.0/16, link-local)"),
        ("azure.test", vec!["168.63.129.16"], "(168.63.129.16/32, cloud metadata)"),
        ("cgnat.test", vec!["100.64.0.1"], "(100.64.0.0/10, shared address space)"),
        ("zero.test", vec!["0.0.0.0"], "(0.0.0.0/8, this network)"),
        ("ietf.test", vec!["192.0.0.8"], "(192.0.0.0/24, IETF protocol assignments)"),
        ("doc1.test", vec!["192.0.2.44"], "(192.0.2.0/24, documentation)"),
        ("doc3.test", vec!["203.0.113.5"], "(203.0.113.0/24, documentation)"),
        ("bench.test", vec!["198.18.5.5"], "(198.18.0.0/15, benchmarking)"),
        ("mcast.test", vec!["224.0.0.251"], "(224.0.0.0/4, multicast)"),
        ("reserved.test", vec!["250.1.2.3"], "(240.0.0.0/4, reserved)"),
        ("bcast.test", vec!["255.255.255.255"], "(255.255.255.255/32, limited broadcast)"),
        ("v6-loop.test", vec!["::1"], "(::1/128, loopback)"),
        ("v6-unspec.test", vec!["::"], "(::/128, unspecified)"),
        ("v6-ula.test", vec!["fc00::5"], "(fc00::/7, unique-local)"),
        ("v6-link.test", vec!["fe80::1"], "(fe80::/10, link-local)"),
        ("v6-site.test", vec!["fec0::1"], "(fec0::/10, site-local)"),
        ("v6-mcast.test", vec!["ff05::2"], "(ff00::/8, multicast)"),
        ("v6-mapped.test", vec!["::ffff:10.1.1.1"], "(10.0.0.0/8, private)"),
        ("v6-compat.test", vec!["::192.168.0.1"], "(192.168.0.0/16, private)"),
        ("v6-nat64.test", vec!["64:ff9b::a9fe:a9fe"], "(169.254.0.0/16, link-local)"),
        ("v6-nat64-local.test", vec!["64:ff9b:1::1"], "(64:ff9b:1::/48, local-use NAT64)"),
        ("v6-6to4.test", vec!["2002:c0a8:0101::1"], "(192.168.0.0/16, private)"),
        ("v6-teredo.test", vec!["2001:0:4136:e378:8000:63bf:3fff:fdd2"], "(2001::/32, Teredo)"),
        ("v6-doc.test", vec!["2001:db8::7"], "(2001:db8::/32, documentation)"),
        ("v6-mixed.test", vec!["2606:4700::1111", "fd00::1"], "(fc00::/7, unique-local)"),
    ]
}

/// URLs that pass: public literals, names with public answers, and the operator's allowed
/// name and range. `true` marks the ones that reach the receiver.
fn allowed_forms() -> Vec<(&'static str, bool)> {
    vec![
        ("https://93.184.216.34/hook", false),
        ("https://[2606:4700:4700::1111]/hook", false),
        ("https://1.1.1.1:8443/x?y=z", false),
        ("https://public.test/hook", false),
        ("https://PUBLIC.test./hook", false),
        ("https://dual.test/hook", false),
        ("https://198.51.100.20/hook", false),
        ("https://172.32.0.1/hook", false),
        ("https://receiver.test:{port}/hook", true),
        ("https://RECEIVER.TEST.:{port}/hook", true),
    ]
}

fn fill(form: &str, receiver: &Receiver) -> String {
    let port = receiver.addr.port().to_string();
    form.replace("{host}", &format!("127.0.0.1:{port}")).replace("{port}", &port)
}

fn set_public_names(app: &TestApp) {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    app.resolver.set("public.test", vec![ip("93.184.216.34")]);
    app.resolver.set("dual.test", vec![ip("93.184.216.34"), ip("2606:2800:220:1::1")]);
}

fn set_refused_names(app: &TestApp) {
    for (name, answers, _) in resolved_forms() {
        app.resolver.set(name, answers.iter().map(|a| a.parse().unwrap()).collect());
    }
}

/// Every refused URL: the literal forms, then the names.
fn refused_urls(receiver: &Receiver) -> Vec<(String, &'static str)> {
    let port = receiver.addr.port();
    let mut urls: Vec<(String, &'static str)> =
        literal_forms().into_iter().map(|(form, why)| (fill(form, receiver), why)).collect();
    for (name, _, why) in resolved_forms() {
        urls.push((format!("https://{name}:{port}/hook"), why));
    }
    urls
}

fn definition_with_webhook(url: &str) -> Value {
    let mut body = example("sequential-signoff");
    body["webhookConfig"] = json!({ "url": url, "secret": "a-secret-of-16-chars" });
    body
}

#[tokio::test]
async fn refused_forms_are_refused_when_written() {
    let ca = TestCa::new();
    let receiver = Receiver::start(&ca).await;
    let app = guarded_app(&ca).await;
    set_refused_names(&app);
    let urls = refused_urls(&receiver);
    assert!(urls.len() >= 60, "only {} refused forms", urls.len());

    for (url, why) in &urls {
        let answer = app.call("definitions/create", definition_with_webhook(url)).await;
        let message = answer.error(400, "INVALID_ARGUMENT");
        assert!(message.contains(why), "{url}: {message:?} does not say {why:?}");
        assert_eq!(
            answer.body["error"]["details"]["issues"][0]["path"],
            json!(["webhookConfig", "url"])
        );

        let dispatch = json!({
            "definitionId": "sequential-signoff",
            "webhookUrl": url,
            "webhookSecret": "a-secret-of-16-chars",
        });
        let message =
            app.call("executions/dispatch", dispatch).await.error(400, "INVALID_ARGUMENT");
        assert!(message.contains(why), "dispatch {url}: {message:?}");
    }
    let listed = app.call("definitions/list", json!({})).await;
    assert_eq!(listed.result()["items"], json!([]), "a refused definition was saved");
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn refused_forms_are_refused_at_request_time_and_nothing_is_sent() {
    let ca = TestCa::new();
    let receiver = Receiver::start(&ca).await;
    let app = guarded_app(&ca).await;
    set_refused_names(&app);
    for (url, why) in refused_urls(&receiver) {
        let request = Request {
            method: Method::POST,
            url: &url,
            headers: vec![],
            body: Some("{}".into()),
            timeout: Duration::from_secs(5),
            max_answer_bytes: 1024,
        };
        match app.engine.outbound().send(request).await {
            Err(Failure::Refused(refusal)) => {
                let said = refusal.to_string();
                assert!(said.contains(why), "{url}: {said:?} does not say {why:?}");
            }
            other => panic!("{url} was not refused: {other:?}"),
        }
    }
    assert!(receiver.received().is_empty(), "a refused request reached the receiver");
}

#[tokio::test]
async fn allowed_forms_pass_when_written_and_when_sent() {
    let ca = TestCa::new();
    let receiver = Receiver::start(&ca).await;
    let app = guarded_app(&ca).await;
    set_public_names(&app);
    let forms = allowed_forms();
    assert!(forms.len() >= 10);
    let mut reaching = 0;
    for (i, (form, reaches_receiver)) in forms.into_iter().enumerate() {
        let url = fill(form, &receiver);
        let mut body = definition_with_webhook(&url);
        body["definitionId"] = json!(format!("allowed-{i}"));
        app.call("definitions/create", body).await.result();

        app.engine.outbound().check(&url).await.unwrap_or_else(|f| panic!("{url}: {f}"));
        if reaches_receiver {
            let request = Request {
                method: Method::POST,
                url: &url,
                headers: vec![("content-type".into(), "application/json".into())],
                body: Some("{\"n\":1}".into()),
                timeout: Duration::from_secs(5),
                max_answer_bytes: 1024,
            };
            let answer = app.engine.outbound().send(request).await.expect("sent");
            assert_eq!(answer.status, 200);
            reaching += 1;
            assert_eq!(receiver.wait_for(reaching).await.len(), reaching);
        }
    }
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_not_refused_when_written() {
    let ca = TestCa::new();
    let app = guarded_app(&ca).await;
    let url = "https://not-yet-in-dns.test/hook";
    app.call("definitions/create", definition_with_webhook(url)).await.result();
    let sent = app
        .engine
        .outbound()
        .send(Request {
            method: Method::POST,
            url,
            headers: vec![],
            body: None,
            timeout: Duration::from_secs(5),
            max_answer_bytes: 1024,
        })
        .await;
    assert_eq!(sent.unwrap_err(), Failure::Unresolved);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let ca = TestCa::new();
    let receiver = Receiver::start(&ca).await;
    let app = guarded_app(&ca).await;
    let port = receiver.addr.port();
    let target = format!("https://{RECEIVER_NAME}:{port}/elsewhere");
    receiver.reply_with(move |r| {
        if r.path == "/hook" {
            Reply::Redirect(307, target.clone())
        } else {
            Reply::Status(200)
        }
    });
    let url = format!("https://{RECEIVER_NAME}:{port}/hook");
    let answer = app.engine.outbound().send(post(&url, Duration::from_secs(5))).await.unwrap();
    assert_eq!(answer.status, 307);
    receiver.assert_quiet(1, Duration::from_millis(300)).await;
    assert_eq!(receiver.received()[0].path, "/hook");
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out() {
    let ca = TestCa::new();
    let receiver = Receiver::start(&ca).await;
    let app = guarded_app(&ca).await;
    receiver.reply_with(|_| Reply::Hang);
    let url = format!("https://{RECEIVER_NAME}:{}/hook", receiver.addr.port());
    let sent = app.engine.outbound().send(post(&url, Duration::from_millis(500))).await;
    assert_eq!(sent.unwrap_err(), Failure::Timeout);
}

#[tokio::test]
async fn an_endless_answer_is_read_only_up_to_the_bound() {
    let ca = TestCa::new();
    let receiver = Receiver::start(&ca).await;
    let app = guarded_app(&ca).await;
    receiver.reply_with(|_| Reply::Endless);
    let url = format!("https://{RECEIVER_NAME}:{}/hook", receiver.addr.port());
    let answer = app.engine.outbound().send(post(&url, Duration::from_secs(5))).await.unwrap();
    assert_eq!(answer.status, 200);
    assert!(answer.truncated);
    assert_eq!(answer.body.len(), 64 * 1024);
}

#[tokio::test]
async fn a_server_without_the_test_ca_does_not_trust_the_receiver() {
    let ca = TestCa::new();
    let receiver = Receiver::start(&ca).await;
    let allow = [RECEIVER_NAME];
    let app = spawn_app_opts(AppOptions { allow: &allow, ..Default::default() }).await;
    app.resolver.set(RECEIVER_NAME, vec!["127.0.0.1".parse().unwrap()]);
    let url = format!("https://{RECEIVER_NAME}:{}/hook", receiver.addr.port());
    let sent = app.engine.outbound().send(post(&url, Duration::from_secs(5))).await;
    assert!(matches!(sent, Err(Failure::Connection(_))), "{sent:?}");
    assert!(receiver.received().is_empty());
}

fn post(url: &str, timeout: Duration) -> Request<'_> {
    Request {
        method: Method::POST,
        url,
        headers: vec![],
        body: Some("{}".into()),
        timeout,
        max_answer_bytes: 64 * 1024,
    }
}
