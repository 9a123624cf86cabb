//! Event webhooks end to end: a real HTTPS receiver on 127.0.0.1 (trusted through a test
//! CA, reached through the allow option) checks every signature with its own HMAC, and the
//! injected clock drives the attempt schedule.

mod common;

use common::receiver::{signature_holds, Received, Receiver, Reply, TestCa};
use common::{events, example, get, spawn_app_opts, step_id, until_status, AppOptions, TestApp};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = "whsec-test-0123456789abcdef";
const RECEIVER_NAME: &str = "receiver.test";
/// The attempt schedule of DECISIONS §7, as delays after each failure.
const SCHEDULE_MS: [i64; 5] = [2_000, 8_000, 32_000, 120_000, 480_000];

struct Setup {
    app: TestApp,
    receiver: Receiver,
    _ca: TestCa,
}

async fn setup() -> Setup {
    let ca = TestCa::new();
    let receiver = Receiver::start(&ca).await;
    let allow = [RECEIVER_NAME];
    let app =
        spawn_app_opts(AppOptions { ca: Some(&ca), allow: &allow, ..Default::default() }).await;
    app.resolver.set(RECEIVER_NAME, vec!["127.0.0.1".parse().unwrap()]);
    Setup { app, receiver, _ca: ca }
}

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("https://{RECEIVER_NAME}:{}{path}", self.receiver.addr.port())
    }

    /// Creates `example` with a webhookConfig at `path` (and `eventTypes` when given).
    async fn create(&self, example_name: &str, path: &str, event_types: Option<Value>) {
        let mut body = example(example_name);
        body["webhookConfig"] = json!({ "url": self.url(path), "secret": SECRET });
        if let Some(types) = event_types {
            body["webhookConfig"]["eventTypes"] = types;
        }
        self.app.call("definitions/create", body).await.result();
    }

    async fn dispatch(&self, definition_id: &str) -> String {
        let answer = self.app.call("executions/dispatch", json!({ "definitionId": definition_id }));
        answer.await.result()["executionId"].as_str().unwrap().to_owned()
    }

    async fn approve(&self, execution_id: &str, node_id: &str, reviewer: &str) {
        let view = get(&self.app, execution_id).await;
        let body = json!({
            "executionId": execution_id,
            "stepId": step_id(&view, node_id),
            "reviewerId": reviewer,
            "decision": "approve",
        });
        self.app.call("steps/recordReviewerDecision", body).await.result();
    }

    /// Runs sequential-signoff to completion.
    async fn run_signoff(&self) -> String {
        let id = self.dispatch("sequential-signoff").await;
        self.approve(&id, "manager", "u-manager").await;
        self.approve(&id, "legal", "u-legal").await;
        until_status(&self.app, &id, "completed").await;
        id
    }

    async fn deliveries(&self, filter: Value) -> Vec<Value> {
        let answer = self.app.call("deliveries/list", filter).await;
        answer.result()["items"].as_array().unwrap().clone()
    }
}

/// Checks the signature and the headers of one request against its body.
fn assert_signed(request: &Received, secret: &str) -> Value {
    assert!(
        signature_holds(secret, &request.body, request.header("x-velt-signature")),
        "bad signature {:?} on {}",
        request.header("x-velt-signature"),
        String::from_utf8_lossy(&request.body)
    );
    let body = request.json();
    assert_eq!(request.header("x-velt-event-id"), body["eventId"]);
    assert_eq!(request.header("content-type"), "application/json");
    body
}

fn attempt_of(request: &Received) -> u32 {
    request.header("x-velt-attempt").parse().expect("x-velt-attempt is a number")
}

/// Moves the clock in steps, letting the delivery loop act after each one.
async fn advance(app: &TestApp, delta_ms: i64) {
    app.advance_ms(delta_ms);
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[tokio::test]
async fn every_event_arrives_signed_in_order_and_as_get_events_shows_it() {
    let s = setup().await;
    s.create("sequential-signoff", "/hooks/all", None).await;
    let id = s.run_signoff().await;
    let expected = events(&s.app, &id).await;
    let received = s.receiver.wait_for(expected.len()).await;
    s.receiver.assert_quiet(expected.len(), Duration::from_millis(200)).await;

    for (request, event) in received.iter().zip(&expected) {
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/hooks/all"));
        assert_eq!(attempt_of(request), 0);
        let body = assert_signed(request, SECRET);
        for key in ["eventId", "seq", "type", "stepId", "timestamp", "correlationId", "data"] {
            assert_eq!(body[key], event[key], "{key} of {body}");
        }
        assert_eq!(body["event"], event["type"]);
        assert_eq!(body["executionId"], id);
        assert_eq!(body["definitionId"], "sequential-signoff");
        let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 10, "{keys:?}");
    }
    assert_eq!(received.last().unwrap().json()["type"], "execution.completed");

    wait_for_attempts(&s, expected.len()).await;
    let log = s.deliveries(json!({ "executionId": id })).await;
    assert_eq!(log.len(), expected.len());
    assert!(log
        .iter()
        .all(|d| d["status"] == "delivered" && d["attempts"][0]["httpStatus"] == 200));
}

#[tokio::test]
async fn event_types_filter_and_the_dispatch_webhook_replaces_the_config() {
    let s = setup().await;
    s.create("sequential-signoff", "/config", Some(json!(["execution.completed"]))).await;
    s.run_signoff().await;
    let received = s.receiver.wait_for(1).await;
    assert_eq!(received[0].json()["type"], "execution.completed");

    let own_secret = "per-run-secret-0123456789";
    let body = json!({
        "definitionId": "sequential-signoff",
        "webhookUrl": s.url("/per-run"),
        "webhookSecret": own_secret,
    });
    let id = s.app.call("executions/dispatch", body).await.result()["executionId"]
        .as_str()
        .unwrap()
        .to_owned();
    s.approve(&id, "manager", "u-manager").await;
    s.approve(&id, "legal", "u-legal").await;
    until_status(&s.app, &id, "completed").await;
    let all = events(&s.app, &id).await;
    let received = s.receiver.wait_for(1 + all.len()).await;
    s.receiver.assert_quiet(1 + all.len(), Duration::from_millis(200)).await;
    for request in &received[1..] {
        assert_eq!(request.path, "/per-run");
        assert_signed(request, own_secret);
        assert!(!signature_holds(SECRET, &request.body, request.header("x-velt-signature")));
    }
}

#[tokio::test]
async fn failed_attempts_follow_the_schedule_then_dead_letter_and_redelivery() {
    let s = setup().await;
    s.receiver.reply_with(|_| Reply::Status(503));
    s.create("sequential-signoff", "/hook", Some(json!(["execution.dispatched"]))).await;
    let id = s.dispatch("sequential-signoff").await;
    s.receiver.wait_for(1).await;

    for (n, delay_ms) in SCHEDULE_MS.iter().enumerate() {
        // The schedule counts from the failure, so let it be recorded before time moves.
        wait_for_attempts(&s, n + 1).await;
        advance(&s.app, delay_ms - 1).await;
        s.receiver.assert_quiet(n + 1, Duration::from_millis(100)).await;
        advance(&s.app, 1).await;
        s.receiver.wait_for(n + 2).await;
    }
    wait_for_attempts(&s, 6).await;
    advance(&s.app, 3_600_000).await;
    s.receiver.assert_quiet(6, Duration::from_millis(200)).await;
    let received = s.receiver.received();
    let attempts: Vec<u32> = received.iter().map(attempt_of).collect();
    assert_eq!(attempts, [0, 1, 2, 3, 4, 5]);
    let event_ids: Vec<&str> = received.iter().map(|r| r.header("x-velt-event-id")).collect();
    assert!(event_ids.iter().all(|e| *e == event_ids[0]));
    let bodies: Vec<&[u8]> = received.iter().map(|r| r.body.as_ref()).collect();
    assert!(bodies.iter().all(|b| *b == bodies[0]), "a retry changed the body");

    let dead = s.deliveries(json!({ "status": "dead" })).await;
    assert_eq!(dead.len(), 1);
    let attempts = dead[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 6);
    assert!(attempts.iter().all(|a| a["httpStatus"] == 503 && a["error"] == "HTTP 503"));
    let times: Vec<i64> = attempts.iter().map(|a| a["at"].as_i64().unwrap()).collect();
    let gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, SCHEDULE_MS);
    assert_eq!(dead[0]["nextAttemptAt"], Value::Null);

    s.receiver.reply_with(|_| Reply::Status(204));
    let answer = s.app.call("deliveries/redeliver", json!({ "executionId": id })).await;
    assert_eq!(answer.result()["redelivered"], json!([dead[0]["eventId"]]));
    let received = s.receiver.wait_for(7).await;
    assert_eq!(attempt_of(&received[6]), 6);
    assert_signed(&received[6], SECRET);
    wait_for_attempts(&s, 7).await;
    let delivered = s.deliveries(json!({ "executionId": id, "status": "delivered" })).await;
    assert_eq!(delivered[0]["attempts"].as_array().unwrap().len(), 7);

    // A delivered event can be sent again by naming it.
    let event_id = delivered[0]["eventId"].clone();
    let body = json!({ "executionId": id, "eventIds": [event_id] });
    s.app.call("deliveries/redeliver", body).await.result();
    s.receiver.wait_for(8).await;

    let nothing_dead = s.app.call("deliveries/redeliver", json!({ "executionId": id })).await;
    assert_eq!(nothing_dead.result()["redelivered"], json!([]));
    let unknown = json!({ "executionId": id, "eventIds": ["evt_nope_1"] });
    s.app.call("deliveries/redeliver", unknown).await.error(404, "NOT_FOUND");
    let missing = json!({ "executionId": "exec_missing" });
    s.app.call("deliveries/redeliver", missing).await.error(404, "NOT_FOUND");
}

#[tokio::test]
async fn a_later_event_waits_while_an_earlier_one_is_retried() {
    let s = setup().await;
    // The first two requests fail, whatever they carry; the rest succeed.
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    s.receiver.reply_with(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) < 2 {
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    });
    s.create("sequential-signoff", "/hook", None).await;
    let id = s.run_signoff().await;
    let expected = events(&s.app, &id).await;
    s.receiver.wait_for(1).await;
    s.receiver.assert_quiet(1, Duration::from_millis(200)).await;
    wait_for_attempts(&s, 1).await;
    advance(&s.app, 2_000).await;
    s.receiver.wait_for(2).await;
    wait_for_attempts(&s, 2).await;
    advance(&s.app, 8_000).await;
    let received = s.receiver.wait_for(expected.len() + 2).await;
    s.receiver.assert_quiet(expected.len() + 2, Duration::from_millis(200)).await;

    let seqs: Vec<i64> = received.iter().map(|r| r.json()["seq"].as_i64().unwrap()).collect();
    let first = expected[0]["seq"].as_i64().unwrap();
    assert_eq!(&seqs[..3], &[first, first, first], "later events overtook a retried one");
    let delivered: Vec<i64> = seqs[2..].to_vec();
    let want: Vec<i64> = expected.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(delivered, want);
}

#[tokio::test]
async fn a_receiver_that_goes_down_and_comes_back_loses_nothing_and_reorders_nothing() {
    let s = setup().await;
    s.create("sequential-signoff", "/hook", None).await;
    s.receiver.pause();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(s.run_signoff().await);
    }
    // Down through four attempts of each first event.
    for (n, delay_ms) in SCHEDULE_MS[..3].iter().enumerate() {
        wait_for_attempts(&s, ids.len() * (n + 1)).await;
        advance(&s.app, *delay_ms).await;
    }
    wait_for_attempts(&s, ids.len() * 4).await;
    assert!(s.receiver.received().is_empty());
    s.receiver.resume().await;
    advance(&s.app, SCHEDULE_MS[3]).await;

    let mut expected = HashMap::new();
    for id in &ids {
        let seqs: Vec<i64> =
            events(&s.app, id).await.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        expected.insert(id.clone(), seqs);
    }
    let total: usize = expected.values().map(Vec::len).sum();
    let received = s.receiver.wait_for(total).await;
    s.receiver.assert_quiet(total, Duration::from_millis(300)).await;

    let mut got: HashMap<String, Vec<i64>> = HashMap::new();
    for request in &received {
        let body = assert_signed(request, SECRET);
        let id = body["executionId"].as_str().unwrap().to_owned();
        got.entry(id).or_default().push(body["seq"].as_i64().unwrap());
    }
    assert_eq!(got, expected, "every event once, in order, per execution");
    let first_attempts: Vec<u32> = received
        .iter()
        .filter(|r| r.json()["type"] == "execution.dispatched")
        .map(attempt_of)
        .collect();
    assert_eq!(first_attempts, [4, 4, 4, 4], "the first events had failed four times");
}

#[tokio::test]
async fn a_name_that_turns_private_after_it_was_written_is_refused_at_delivery() {
    let s = setup().await;
    let name = "hooks.rebinding.test";
    s.app.resolver.set(name, vec!["93.184.216.34".parse().unwrap()]);
    let mut body = example("sequential-signoff");
    let url = format!("https://{name}:{}/hook", s.receiver.addr.port());
    body["webhookConfig"] =
        json!({ "url": url, "secret": SECRET, "eventTypes": ["execution.dispatched"] });
    s.app.call("definitions/create", body).await.result();

    s.app.resolver.set(name, vec!["93.184.216.34".parse().unwrap(), "127.0.0.1".parse().unwrap()]);
    s.dispatch("sequential-signoff").await;
    let log = wait_for_attempts(&s, 1).await;
    let error = log[0]["attempts"][0]["error"].as_str().unwrap();
    assert!(error.contains("(127.0.0.0/8, loopback)"), "{error}");
    assert_eq!(log[0]["attempts"][0]["httpStatus"], Value::Null);
    assert_eq!(log[0]["status"], "pending");
    assert!(s.receiver.received().is_empty());
}

/// The delivery log once `count` attempts are recorded in it, over every delivery.
async fn wait_for_attempts(s: &Setup, count: usize) -> Vec<Value> {
    for _ in 0..500 {
        let log = s.deliveries(json!({ "pageSize": 200 })).await;
        let recorded: usize = log.iter().map(|d| d["attempts"].as_array().unwrap().len()).sum();
        if recorded >= count {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the delivery log never held {count} attempts");
}

#[tokio::test]
async fn the_delivery_log_pages_filters_and_stays_in_its_workspace() {
    let s = setup().await;
    s.create("sequential-signoff", "/hook", None).await;
    let id = s.run_signoff().await;
    let count = events(&s.app, &id).await.len();
    s.receiver.wait_for(count).await;

    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let mut filter = json!({ "pageSize": 2 });
        if !cursor.is_null() {
            filter["cursor"] = cursor.clone();
        }
        let page = s.app.call("deliveries/list", filter).await;
        let result = page.result();
        for item in result["items"].as_array().unwrap() {
            seen.push(item["seq"].as_i64().unwrap());
        }
        cursor = result["nextCursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(seen.len(), count);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first: {seen:?}");

    let other = s.app.other_workspace().await;
    let theirs = s.app.call_as(&other, "deliveries/list", json!({})).await;
    assert_eq!(theirs.result()["items"], json!([]));
    let redeliver = json!({ "executionId": id });
    s.app.call_as(&other, "deliveries/redeliver", redeliver).await.error(404, "NOT_FOUND");

    for bad in [
        json!({ "status": "lost" }),
        json!({ "pageSize": 0 }),
        json!({ "pageSize": 201 }),
        json!({ "cursor": "not-a-cursor" }),
        json!({ "extra": true }),
    ] {
        s.app.call("deliveries/list", bad).await.error(400, "INVALID_ARGUMENT");
    }
    for bad in [json!({}), json!({ "executionId": id, "eventIds": [] })] {
        s.app.call("deliveries/redeliver", bad).await.error(400, "INVALID_ARGUMENT");
    }
}

#[tokio::test]
async fn redirects_fail_an_attempt_and_are_not_followed() {
    let s = setup().await;
    let elsewhere = s.url("/elsewhere");
    s.receiver.reply_with(move |r| match r.path.as_str() {
        "/hook" => Reply::Redirect(308, elsewhere.clone()),
        _ => Reply::Status(200),
    });
    s.create("sequential-signoff", "/hook", Some(json!(["execution.dispatched"]))).await;
    s.dispatch("sequential-signoff").await;
    let log = wait_for_attempts(&s, 1).await;
    assert_eq!(log[0]["attempts"][0]["httpStatus"], 308);
    assert_eq!(log[0]["attempts"][0]["error"], "HTTP 308");
    s.receiver.assert_quiet(1, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn endless_answers_and_silent_receivers_do_not_hold_a_delivery() {
    let s = setup().await;
    s.receiver.reply_with(|r| match r.path.as_str() {
        "/endless" => Reply::Endless,
        _ => Reply::Hang,
    });
    s.create("sequential-signoff", "/endless", Some(json!(["execution.dispatched"]))).await;
    let mut silent = example("parallel-quorum");
    silent["webhookConfig"] = json!({
        "url": s.url("/silent"),
        "secret": SECRET,
        "eventTypes": ["execution.dispatched"],
    });
    s.app.call("definitions/create", silent).await.result();
    let endless_id = s.dispatch("sequential-signoff").await;
    let silent_id = s.dispatch("parallel-quorum").await;

    // The endless answer's status is all that counts: delivered, without reading it all.
    let mut delivered = Vec::new();
    for _ in 0..500 {
        delivered = s.deliveries(json!({ "executionId": endless_id, "status": "delivered" })).await;
        if !delivered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(delivered.len(), 1, "the endless answer never counted as delivered");

    // The silent receiver is given up on after the 10 s attempt timeout.
    let mut attempts = Vec::new();
    for _ in 0..150 {
        let log = s.deliveries(json!({ "executionId": silent_id })).await;
        attempts = log[0]["attempts"].as_array().unwrap().clone();
        if !attempts.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(attempts.len(), 1, "the silent receiver's attempt never ended");
    assert_eq!(attempts[0]["error"], "no answer within the time limit");
    let latency = attempts[0]["latencyMs"].as_i64().unwrap();
    assert!((10_000..12_000).contains(&latency), "latency {latency}");
}
