//! Notification nodes against real peers on 127.0.0.1: the test kit's SMTP server (plain,
//! STARTTLS, implicit TLS, AUTH) and an HTTPS receiver playing Slack's chat API and incoming
//! webhooks. Templates, delivery counting, retries on the 2/8/32 s schedule, and the error
//! codes of the reference.

mod common;

use assent::engine::NotificationSettings;
use assent_store::Store;
use common::receiver::{Received, Receiver, Reply, TestCa};
use common::smtp::{Greeting, SmtpOptions, SmtpServer};
use common::{events, spawn_app_opts, step, until_status, AppOptions, TestApp, T0_MS};
use serde_json::{json, Value};
use std::time::Duration;

const FROM: &str = "Assent Bot <assent@example.com>";
/// The name the Slack receiver answers to; the only host the servers are told to allow.
const SLACK_HOST: &str = "receiver.test";
const BOT_TOKEN: &str = "xoxb-test-token";

async fn mail_app(
    server: &SmtpServer,
    credentials: &str,
    query: &str,
    ca: Option<&TestCa>,
) -> TestApp {
    let notifications = NotificationSettings {
        smtp_url: Some(server.url(credentials, query)),
        smtp_from: Some(FROM.into()),
        ..Default::default()
    };
    spawn_app_opts(AppOptions { ca, notifications, ..Default::default() }).await
}

/// A server that trusts the test CA, allows the receiver's name, and calls the chat API at
/// the receiver.
async fn slack_app(ca: &TestCa, slack: &Receiver, bot_token: Option<&str>) -> TestApp {
    let notifications = NotificationSettings {
        slack_bot_token: bot_token.map(str::to_owned),
        slack_api_base_url: format!("https://{SLACK_HOST}:{}/api", slack.addr.port()),
        ..Default::default()
    };
    let allow = [SLACK_HOST];
    let options = AppOptions { ca: Some(ca), allow: &allow, notifications, ..Default::default() };
    let app = spawn_app_opts(options).await;
    app.resolver.set(SLACK_HOST, vec!["127.0.0.1".parse().unwrap()]);
    app
}

fn webhook_url(slack: &Receiver) -> String {
    format!("https://{SLACK_HOST}:{}/services/T000/B000/XXXX", slack.addr.port())
}

/// A mock agent, then the notification `tell`, which reads the agent's output as `input`.
fn after_agent(id: &str, config: Value) -> Value {
    json!({
        "definitionId": id,
        "name": id,
        "nodes": [
            { "nodeId": "check", "type": "agent",
              "config": { "agentId": "__mock__", "url": "https://example.com/doc" } },
            { "nodeId": "tell", "type": "notification", "config": config },
        ],
        "edges": [{ "from": "check", "to": "tell", "on": "always" }],
    })
}

fn email(recipients: &[&str]) -> Value {
    json!({ "channel": "email", "recipients": recipients, "subjectTemplate": "Hello",
            "bodyTemplate": "Decision: {{input.decision}}" })
}

fn slack_text(target: &str) -> Value {
    json!({ "channel": "slack", "slackTarget": target,
            "bodyTemplate": "*{{execution.triggerContext.title}}* by <@U1>: {{input.decision}}" })
}

/// Creates the definition and dispatches it with `trigger_context`.
async fn run(app: &TestApp, definition: Value, trigger_context: Value) -> String {
    let id = definition["definitionId"].clone();
    app.call("definitions/create", definition).await.result();
    let body = json!({ "definitionId": id, "triggerContext": trigger_context });
    let answer = app.call("executions/dispatch", body).await;
    answer.result()["executionId"].as_str().expect("executionId").to_owned()
}

/// The failed `tell` step and its `step.failed` data, once the execution has failed.
async fn failed_step(app: &TestApp, execution_id: &str) -> (Value, Value) {
    let view = until_status(app, execution_id, "failed").await;
    let tell = step(&view, "tell").clone();
    assert_eq!(tell["status"], "failed", "{view}");
    let events = events(app, execution_id).await;
    let failed = events.iter().find(|e| e["type"] == "step.failed").expect("step.failed");
    (tell, failed["data"].clone())
}

/// Waits until the server's earliest timer is due at `due_at_ms`: the retry the engine just
/// scheduled. Only then is it safe to move the clock to it.
async fn until_next_timer(app: &TestApp, due_at_ms: i64) {
    for _ in 0..500 {
        if app.store.next_timer_due_ms().await.unwrap() == Some(due_at_ms) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let next = app.store.next_timer_due_ms().await.unwrap();
    panic!("next timer is due at {next:?}, not {due_at_ms}");
}

fn terminal(channel: &str) -> Value {
    json!({ "channel": channel, "retryClass": "terminal" })
}

#[tokio::test]
async fn email_text_and_html_are_rendered_and_sent() {
    let server = SmtpServer::start(SmtpOptions::default()).await;
    let app = mail_app(&server, "", "", None).await;
    let text = json!({
        "channel": "email",
        "recipients": ["ada@example.com", "bob@example.com"],
        "subjectTemplate": "Review of {{execution.triggerContext.doc.title}} ✓",
        "bodyTemplate": "Decision: {{input.decision}}\n\
                         Doc: {{execution.triggerContext.doc}}\n\
                         Tags: {{execution.triggerContext.tags}}\n\
                         Missing: [{{input.nothing}}] [{{execution.triggerContext.no.such}}]\n\
                         Step: {{step.nodeId}} try {{step.retryCount}}\n\
                         .a line that starts with a dot\n\
                         Run {{execution.executionId}} of {{execution.definitionId}}",
    });
    let context = json!({ "doc": { "title": "Q3 <plan> é", "id": 7 }, "tags": ["a", "b"] });
    let id = run(&app, after_agent("email-text", text), context.clone()).await;
    let view = until_status(&app, &id, "completed").await;

    let message = &server.wait_for(1).await[0];
    assert_eq!(message.sender, "assent@example.com");
    assert_eq!(message.recipients, ["ada@example.com", "bob@example.com"]);
    assert_eq!(message.subject, "Review of Q3 <plan> é ✓");
    let expected_body = format!(
        "Decision: approve\nDoc: {{\"title\":\"Q3 <plan> é\",\"id\":7}}\nTags: [\"a\",\"b\"]\n\
         Missing: [] []\nStep: tell try 0\n.a line that starts with a dot\n\
         Run {id} of email-text"
    );
    assert_eq!(message.body, expected_body);
    assert_eq!(message.header("from"), FROM);
    assert_eq!(message.header("to"), "ada@example.com, bob@example.com");
    assert_eq!(message.header("date"), "Tue, 1 Dec 2026 00:00:00 +0000");
    assert_eq!(message.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(message.header("content-transfer-encoding"), "quoted-printable");
    assert!(message.raw.contains("Subject: =?UTF-8?B?"), "a non-ASCII subject is encoded");
    let output = &step(&view, "tell")["output"];
    assert_eq!(
        output,
        &json!({ "channel": "email", "acceptedRecipients": ["ada@example.com", "bob@example.com"],
                 "refusedRecipients": [], "messageId": message.header("message-id") })
    );

    let html = json!({ "channel": "email", "recipients": ["ada@example.com"], "format": "html",
                       "bodyTemplate": "<p>{{execution.triggerContext.doc.title}}</p>" });
    let id = run(&app, after_agent("email-html", html), context).await;
    until_status(&app, &id, "completed").await;
    let message = &server.wait_for(2).await[1];
    assert_eq!(message.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(message.body, "<p>Q3 &lt;plan&gt; é</p>", "values are escaped in HTML");
    assert_eq!(message.header("subject"), "", "no subjectTemplate, no subject");
}

#[tokio::test]
async fn one_accepted_recipient_is_enough() {
    let server = SmtpServer::start(SmtpOptions::default()).await;
    server.refuse(&["nobody@example.com"]);
    let app = mail_app(&server, "", "", None).await;
    let recipients = ["nobody@example.com", "ada@example.com", "not-ascii-é@example.com"];
    let id = run(&app, after_agent("partly", email(&recipients)), json!({})).await;
    let view = until_status(&app, &id, "completed").await;
    let message = &server.wait_for(1).await[0];
    assert_eq!(message.recipients, ["ada@example.com"]);
    assert_eq!(message.header("to"), "ada@example.com", "the header names who got it");
    let output = &step(&view, "tell")["output"];
    assert_eq!(output["acceptedRecipients"], json!(["ada@example.com"]));
    assert_eq!(
        output["refusedRecipients"],
        json!(["nobody@example.com", "not-ascii-é@example.com"])
    );
}

#[tokio::test]
async fn a_value_cannot_add_a_header() {
    let server = SmtpServer::start(SmtpOptions::default()).await;
    let app = mail_app(&server, "", "", None).await;
    let mut config = email(&["ada@example.com"]);
    config["subjectTemplate"] = json!("{{execution.triggerContext.title}}");
    let context = json!({ "title": "Hi\r\nBcc: eve@example.com\n\nbody" });
    let id = run(&app, after_agent("inject", config), context).await;
    until_status(&app, &id, "completed").await;
    let message = &server.wait_for(1).await[0];
    assert_eq!(message.header("bcc"), "");
    assert_eq!(message.subject, "Hi Bcc: eve@example.com body");
    assert_eq!(message.body, "Decision: approve");
    assert_eq!(message.recipients, ["ada@example.com"]);
}

#[tokio::test]
async fn no_accepted_recipient_is_retried_on_schedule_then_fails() {
    let server = SmtpServer::start(SmtpOptions::default()).await;
    server.refuse(&["nobody@example.com"]);
    let app = mail_app(&server, "", "", None).await;
    let id = run(&app, after_agent("refused", email(&["nobody@example.com"])), json!({})).await;
    let mut now_ms = T0_MS;
    for (attempts, delay_ms) in [(1, 2_000), (2, 8_000), (3, 32_000)] {
        server.wait_for_sessions(attempts).await;
        until_next_timer(&app, now_ms + delay_ms).await;
        let view = common::get(&app, &id).await;
        assert_eq!(step(&view, "tell")["status"], "running", "retried, not failed");
        app.advance_ms(delay_ms - 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(server.connections(), attempts, "no attempt before the retry is due");
        app.advance_ms(1);
        now_ms += delay_ms;
    }
    server.wait_for_sessions(4).await;
    let (tell, data) = failed_step(&app, &id).await;
    assert_eq!(tell["error"]["code"], "notification-email-delivery-failed");
    assert_eq!(tell["error"]["message"], "the SMTP server accepted no recipient (1 refused)");
    assert_eq!(data, json!({ "channel": "email", "retryClass": "transient" }));
    assert!(server.messages().is_empty());
    for transcript in server.transcripts() {
        assert!(transcript.contains(&"RCPT TO:<nobody@example.com>".to_owned()));
        assert!(!transcript.contains(&"DATA".to_owned()), "no DATA without a recipient");
    }
}

#[tokio::test]
async fn an_smtp_server_that_is_down_is_retried() {
    for down in ["not listening", "turns connections away", "drops connections"] {
        let server = SmtpServer::start(SmtpOptions::default()).await;
        match down {
            "not listening" => server.pause(),
            "turns connections away" => server.set_greeting(Greeting::TurnAway),
            _ => server.set_greeting(Greeting::Drop),
        }
        let app = mail_app(&server, "", "", None).await;
        let id = run(&app, after_agent("down", email(&["ada@example.com"])), json!({})).await;
        until_next_timer(&app, T0_MS + 2_000).await;
        let view = common::get(&app, &id).await;
        assert_eq!(step(&view, "tell")["status"], "running", "{down}");

        match down {
            "not listening" => server.resume().await,
            _ => server.set_greeting(Greeting::Ready),
        }
        app.advance_ms(2_000);
        until_status(&app, &id, "completed").await;
        assert_eq!(server.wait_for(1).await.len(), 1, "{down}");
    }
}

/// One SMTP set-up and what a message sent through it comes to: the user it authenticated
/// as, or the step's error message (the step fails at once).
struct TlsCase {
    name: &'static str,
    options: SmtpOptions,
    credentials: &'static str,
    query: &'static str,
    trusted: bool,
    outcome: Result<Option<&'static str>, &'static str>,
}

#[tokio::test]
async fn starttls_implicit_tls_and_auth() {
    let ca = TestCa::new();
    let tls = || Some(ca.server_config());
    let auth = Some(("mailer", "s3cret:pw"));
    let cases = [
        TlsCase {
            name: "STARTTLS then AUTH PLAIN",
            options: SmtpOptions { starttls: tls(), auth, ..Default::default() },
            credentials: "mailer:s3cret%3Apw@",
            query: "",
            trusted: true,
            outcome: Ok(Some("mailer")),
        },
        TlsCase {
            name: "STARTTLS then AUTH LOGIN",
            options: SmtpOptions {
                starttls: tls(),
                auth,
                auth_mechanisms: "LOGIN",
                ..Default::default()
            },
            credentials: "mailer:s3cret%3Apw@",
            query: "?starttls=required",
            trusted: true,
            outcome: Ok(Some("mailer")),
        },
        TlsCase {
            name: "TLS from the first byte",
            options: SmtpOptions { implicit_tls: tls(), auth, ..Default::default() },
            credentials: "mailer:s3cret%3Apw@",
            query: "",
            trusted: true,
            outcome: Ok(Some("mailer")),
        },
        TlsCase {
            name: "STARTTLS when offered, no credentials",
            options: SmtpOptions { starttls: tls(), ..Default::default() },
            credentials: "",
            query: "",
            trusted: true,
            outcome: Ok(None),
        },
        TlsCase {
            name: "a wrong password",
            options: SmtpOptions { starttls: tls(), auth, ..Default::default() },
            credentials: "mailer:wrong@",
            query: "",
            trusted: true,
            outcome: Err("the SMTP server answered 535 to AUTH"),
        },
        TlsCase {
            name: "credentials, but no STARTTLS on offer",
            options: SmtpOptions { auth, ..Default::default() },
            credentials: "mailer:s3cret%3Apw@",
            query: "",
            trusted: true,
            outcome: Err("the SMTP server does not offer STARTTLS, which is required"),
        },
        TlsCase {
            name: "starttls=required, but not on offer",
            options: SmtpOptions::default(),
            credentials: "",
            query: "?starttls=required",
            trusted: true,
            outcome: Err("the SMTP server does not offer STARTTLS, which is required"),
        },
        TlsCase {
            name: "a certificate from a CA the server does not trust",
            options: SmtpOptions { starttls: tls(), ..Default::default() },
            credentials: "",
            query: "",
            trusted: false,
            outcome: Err("the SMTP server's certificate is not trusted"),
        },
    ];
    for case in cases {
        let server = SmtpServer::start(case.options.clone()).await;
        let ca = case.trusted.then_some(&ca);
        let app = mail_app(&server, case.credentials, case.query, ca).await;
        let id = run(&app, after_agent("tls", email(&["ada@example.com"])), json!({})).await;
        match case.outcome {
            Ok(user) => {
                until_status(&app, &id, "completed").await;
                let message = &server.wait_for(1).await[0];
                assert!(message.over_tls, "{}", case.name);
                assert_eq!(message.authenticated_as.as_deref(), user, "{}", case.name);
            }
            Err(expected) => {
                let (tell, data) = failed_step(&app, &id).await;
                assert_eq!(tell["error"]["code"], "notification-email-delivery-failed");
                assert_eq!(tell["error"]["message"], expected, "{}", case.name);
                assert_eq!(data, terminal("email"), "{}", case.name);
                assert_eq!(server.connections(), 1, "{}: not retried", case.name);
            }
        }
        server.wait_for_sessions(1).await;
        let transcript = &server.transcripts()[0];
        let auth_at = transcript.iter().position(|c| c == "AUTH ...");
        let tls_at = transcript.iter().position(|c| c == "STARTTLS");
        let implicit = case.options.implicit_tls.is_some();
        let auth_after_tls = tls_at.is_some_and(|tls_at| Some(tls_at) < auth_at);
        let no_password_in_clear = auth_at.is_none() || implicit || auth_after_tls;
        assert!(no_password_in_clear, "{}: {transcript:?}", case.name);
    }
}

#[tokio::test]
async fn the_whole_smtp_conversation() {
    let ca = TestCa::new();
    let options = SmtpOptions {
        starttls: Some(ca.server_config()),
        auth: Some(("mailer", "pw")),
        ..Default::default()
    };
    let server = SmtpServer::start(options).await;
    let app = mail_app(&server, "mailer:pw@", "", Some(&ca)).await;
    let id = run(&app, after_agent("talk", email(&["ada@example.com"])), json!({})).await;
    until_status(&app, &id, "completed").await;
    server.wait_for_sessions(1).await;
    let expected = [
        "EHLO [127.0.0.1]",
        "STARTTLS",
        "EHLO [127.0.0.1]",
        "AUTH ...",
        "MAIL FROM:<assent@example.com>",
        "RCPT TO:<ada@example.com>",
        "DATA",
        "QUIT",
    ];
    assert_eq!(server.transcripts()[0], expected);
}

fn ok_answer() -> Reply {
    Reply::Body(200, "application/json", r#"{"ok":true,"channel":"C0123","ts":"1.000100"}"#.into())
}

/// The chat API at the receiver: the bot token must be there, or Slack says `invalid_auth`.
fn chat_api(received: &Received) -> Reply {
    let authorised = received.header("authorization") == format!("Bearer {BOT_TOKEN}");
    if received.path != "/api/chat.postMessage" || !authorised {
        return Reply::Body(
            200,
            "application/json",
            r#"{"ok":false,"error":"invalid_auth"}"#.into(),
        );
    }
    ok_answer()
}

#[tokio::test]
async fn slack_messages_through_the_chat_api() {
    let ca = TestCa::new();
    let slack = Receiver::start(&ca).await;
    slack.reply_with(chat_api);
    let app = slack_app(&ca, &slack, Some(BOT_TOKEN)).await;
    let context = json!({ "title": "<!channel> & co" });

    let id = run(&app, after_agent("chat-text", slack_text("C0123")), context.clone()).await;
    let view = until_status(&app, &id, "completed").await;
    let request = &slack.wait_for(1).await[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.header("content-type"), "application/json; charset=utf-8");
    assert_eq!(
        request.json(),
        json!({ "text": "*&lt;!channel&gt; &amp; co* by <@U1>: approve", "channel": "C0123" }),
        "values cannot mention or link; the template's own text can"
    );
    let output = &step(&view, "tell")["output"];
    assert_eq!(output, &json!({ "channel": "slack", "slackChannel": "C0123", "ts": "1.000100" }));

    let blocks = json!({
        "channel": "slack", "slackTarget": "C0123", "format": "slack-blocks",
        "subjectTemplate": "New: {{execution.triggerContext.title}}",
        "bodyTemplate": r#"[{"type":"section","text":{"type":"mrkdwn","text":"\"{{execution.triggerContext.title}}\""}}]"#,
    });
    let id = run(&app, after_agent("chat-blocks", blocks), context).await;
    until_status(&app, &id, "completed").await;
    let request = &slack.wait_for(2).await[1];
    let section = json!({ "type": "section",
                          "text": { "type": "mrkdwn", "text": "\"&lt;!channel&gt; &amp; co\"" } });
    assert_eq!(
        request.json(),
        json!({ "text": "New: &lt;!channel&gt; &amp; co", "blocks": [section], "channel": "C0123" })
    );
}

#[tokio::test]
async fn slack_messages_through_an_incoming_webhook() {
    let ca = TestCa::new();
    let slack = Receiver::start(&ca).await;
    slack.reply_with(|_| Reply::Body(200, "text/plain", "ok".into()));
    let app = slack_app(&ca, &slack, None).await;
    let config = slack_text(&webhook_url(&slack));
    let id = run(&app, after_agent("hook", config), json!({ "title": "Q3" })).await;
    let view = until_status(&app, &id, "completed").await;
    let request = &slack.wait_for(1).await[0];
    assert_eq!(request.path, "/services/T000/B000/XXXX");
    assert_eq!(request.header("authorization"), "", "the bot token is for the chat API only");
    assert_eq!(request.json(), json!({ "text": "*Q3* by <@U1>: approve" }));
    assert_eq!(step(&view, "tell")["output"], json!({ "channel": "slack" }));
}

#[tokio::test]
async fn slack_errors_are_terminal_or_retried_as_slack_means_them() {
    let json = |text: &str| Reply::Body(200, "application/json", text.to_owned());
    let cases = [
        ("api", json(r#"{"ok":false,"error":"channel_not_found"}"#), "channel_not_found", false),
        ("api", json(r#"{"ok":false,"error":"not_in_channel"}"#), "not_in_channel", false),
        ("api", json(r#"{"ok":false,"error":"rate_limited"}"#), "rate_limited", true),
        ("api", Reply::Status(503), "http-503", true),
        (
            "webhook",
            Reply::Body(404, "text/html", "channel_not_found".into()),
            "channel_not_found",
            false,
        ),
        ("webhook", Reply::Body(403, "text/html", "invalid_token".into()), "invalid_token", false),
        ("webhook", Reply::Status(500), "http-500", true),
        ("webhook", Reply::Status(429), "http-429", true),
    ];
    let ca = TestCa::new();
    for (target, first, name, retried) in cases {
        let slack = Receiver::start(&ca).await;
        let mut answered = 0;
        slack.reply_with(move |_| {
            answered += 1;
            if answered == 1 {
                return first.clone();
            }
            if target == "api" {
                ok_answer()
            } else {
                Reply::Body(200, "text/plain", "ok".into())
            }
        });
        let app = slack_app(&ca, &slack, Some(BOT_TOKEN)).await;
        let target_value = if target == "api" { "C0123".to_owned() } else { webhook_url(&slack) };
        let id = run(&app, after_agent("errors", slack_text(&target_value)), json!({})).await;
        if retried {
            until_next_timer(&app, T0_MS + 2_000).await;
            app.advance_ms(2_000);
            until_status(&app, &id, "completed").await;
            assert_eq!(slack.received().len(), 2, "{target} {name}");
            continue;
        }
        let (tell, data) = failed_step(&app, &id).await;
        let code = format!("notification-slack-api-error:{name}");
        assert_eq!(tell["error"]["code"], code, "{target}");
        assert_eq!(data, terminal("slack"), "{target} {name}");
        assert_eq!(slack.received().len(), 1, "{target} {name}: not retried");
    }
}

#[tokio::test]
async fn a_webhook_target_that_resolves_to_a_private_address_is_never_called() {
    let ca = TestCa::new();
    let slack = Receiver::start(&ca).await;
    let app = slack_app(&ca, &slack, None).await;
    // The name does not resolve when the definition is written, so it passes then; by the
    // time the message is sent it points inside the network.
    let target = format!("https://rebind.test:{}/services/T/B/x", slack.addr.port());
    let definition = after_agent("rebind", slack_text(&target));
    app.call("definitions/create", definition).await.result();
    app.resolver.set("rebind.test", vec!["10.0.0.5".parse().unwrap()]);
    let answer = app.call("executions/dispatch", json!({ "definitionId": "rebind" })).await;
    let id = answer.result()["executionId"].as_str().unwrap().to_owned();

    let (tell, data) = failed_step(&app, &id).await;
    assert_eq!(tell["error"]["code"], "notification-slack-ssrf-blocked:10.0.0.0/8");
    assert_eq!(
        tell["error"]["message"],
        "the Slack URL host resolves to a private, loopback, or link-local address \
         (10.0.0.0/8, private)"
    );
    assert_eq!(data, terminal("slack"));
    slack.assert_quiet(0, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn blocks_that_do_not_render_to_json_fail_before_sending() {
    let ca = TestCa::new();
    let slack = Receiver::start(&ca).await;
    let app = slack_app(&ca, &slack, Some(BOT_TOKEN)).await;
    // A string value outside a JSON string literal renders bare: the author forgot quotes.
    let config = json!({ "channel": "slack", "slackTarget": "C0123", "format": "slack-blocks",
                         "bodyTemplate": r#"[{"type":"section","text":{{execution.triggerContext.title}}}]"# });
    let id = run(&app, after_agent("bad-blocks", config), json!({ "title": "Q3" })).await;
    let (tell, data) = failed_step(&app, &id).await;
    assert_eq!(tell["error"]["code"], "notification-slack-blocks-invalid-json");
    assert_eq!(data, json!({ "reason": "notification-slack-blocks-invalid-json" }));
    slack.assert_quiet(0, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn without_configuration_the_step_fails_with_not_configured() {
    let ca = TestCa::new();
    let slack = Receiver::start(&ca).await;
    let app = slack_app(&ca, &slack, None).await;
    let cases = [
        ("no-smtp", email(&["ada@example.com"]), "email", "notification-email-not-configured"),
        ("no-token", slack_text("C0123"), "slack", "notification-slack-not-configured"),
    ];
    for (id, config, channel, code) in cases {
        let execution_id = run(&app, after_agent(id, config), json!({})).await;
        let (tell, data) = failed_step(&app, &execution_id).await;
        assert_eq!(tell["error"]["code"], code);
        assert_eq!(data, terminal(channel));
    }
    slack.assert_quiet(0, Duration::from_millis(100)).await;
}
