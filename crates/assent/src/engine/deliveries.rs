//! Event delivery to the user's webhook (DECISIONS §7): which events go where, the signed
//! body, and the loop that sends them.
//!
//! Deliveries are written by the same transaction as their events, so none is lost between
//! a commit and a send. The loop claims them from the store, which hands out only the
//! earliest pending delivery of each execution, sends each outside any transaction, and
//! records the attempt with where the delivery goes next.

use super::{wait_until_due, Engine};
use crate::outbound::{Failure, Request};
use assent_core::engine::{Event, ExecutionState};
use assent_core::ids;
use assent_core::model::DefinitionSpec;
use assent_store::{AfterAttempt, ClaimedDelivery, DeliveryAttempt, NewDelivery, Store};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::json;
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Delays before the second to sixth attempts of a round; after the sixth fails the
/// delivery is dead.
pub const RETRY_DELAYS_MS: [i64; 5] = [2_000, 8_000, 32_000, 120_000, 480_000];
/// Time for one attempt, the answer included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// A claimed delivery is ours this long; well past one attempt's timeout.
const LEASE_MS: i64 = 30_000;
const CLAIM_BATCH: u32 = 256;
/// Attempts in flight at once.
const SENDING_MAX: usize = 128;
/// Bytes of a receiver's answer read at most; only its status matters.
const ANSWER_READ_MAX: usize = 16 * 1024;
const STORE_RETRY_WAIT: Duration = Duration::from_millis(500);

/// Where an execution's events go: the dispatch's `webhookUrl` for that run, else the
/// definition's `webhookConfig` with its `eventTypes` filter.
struct Target<'a> {
    url: &'a str,
    secret: &'a str,
    event_types: Option<&'a [String]>,
}

fn target<'a>(spec: &'a DefinitionSpec, state: &'a ExecutionState) -> Option<Target<'a>> {
    if let Some(webhook) = &state.webhook {
        return Some(Target { url: &webhook.url, secret: &webhook.secret, event_types: None });
    }
    let config = spec.webhook_config.as_ref()?;
    Some(Target {
        url: &config.url,
        secret: &config.secret,
        event_types: config.event_types.as_deref(),
    })
}

/// The deliveries of a command's events: one per external event the target wants.
pub(super) fn deliveries_for(
    events: &[Event],
    spec: &DefinitionSpec,
    state: &ExecutionState,
) -> Vec<NewDelivery> {
    let Some(target) = target(spec, state) else { return Vec::new() };
    let wanted = |event: &Event| {
        event.external && target.event_types.is_none_or(|types| types.contains(&event.event_type))
    };
    events
        .iter()
        .filter(|e| wanted(e))
        .map(|event| {
            let event_id = ids::event_id(&state.execution_id, event.seq);
            let body = json!({
                "eventId": event_id,
                "seq": event.seq,
                "type": event.event_type,
                "event": event.event_type,
                "executionId": state.execution_id,
                "definitionId": state.definition_id,
                "stepId": event.step_id,
                "timestamp": event.timestamp,
                "correlationId": state.correlation_id,
                "data": event.data,
            });
            NewDelivery {
                event_id,
                seq: event.seq as i64,
                event_type: event.event_type.clone(),
                url: target.url.to_owned(),
                secret: target.secret.to_owned(),
                body: body.to_string(),
            }
        })
        .collect()
}

/// `sha256=` and the lowercase hex HMAC-SHA256 of `body`, keyed by the secret's bytes.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Runs until the task is dropped.
pub async fn run_deliveries(engine: Arc<Engine>) {
    let sending = Arc::new(Semaphore::new(SENDING_MAX));
    loop {
        // A claim is a write; look with a read first whether anything is due.
        let next_due_ms = engine.store.next_delivery_due_ms().await.unwrap_or(None);
        let now_ms = engine.clock.now_ms();
        if next_due_ms.is_none_or(|due_ms| due_ms > now_ms) {
            wait_until_due(&engine, next_due_ms, &engine.deliveries_wake).await;
            continue;
        }
        let claimed = match engine.store.claim_due_deliveries(now_ms, LEASE_MS, CLAIM_BATCH).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!("claiming due deliveries failed: {e}");
                tokio::time::sleep(STORE_RETRY_WAIT).await;
                continue;
            }
        };
        for delivery in claimed {
            let Ok(permit) = sending.clone().acquire_owned().await else { return };
            let engine = engine.clone();
            tokio::spawn(async move {
                attempt(&engine, delivery).await;
                drop(permit);
            });
        }
    }
}

/// One attempt of a claimed delivery, recorded with where the delivery goes next.
async fn attempt(engine: &Engine, delivery: ClaimedDelivery) {
    let at_ms = engine.clock.now_ms();
    let started = Instant::now();
    let body = bytes::Bytes::from(delivery.body.clone());
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("x-velt-signature".to_owned(), signature(&delivery.secret, &body)),
        ("x-velt-event-id".to_owned(), delivery.event_id.clone()),
        ("x-velt-attempt".to_owned(), delivery.attempts.to_string()),
    ];
    let request = Request {
        method: Method::POST,
        url: &delivery.url,
        headers,
        body: Some(body),
        timeout: ATTEMPT_TIMEOUT,
        max_answer_bytes: ANSWER_READ_MAX,
    };
    let (http_status, error) = match engine.outbound.send(request).await {
        Ok(answer) if (200..300).contains(&answer.status) => (Some(answer.status), None),
        Ok(answer) => (Some(answer.status), Some(format!("HTTP {}", answer.status))),
        Err(failure) => {
            if let Failure::Connection(detail) = &failure {
                tracing::debug!(event_id = %delivery.event_id, "delivery failed: {detail}");
            }
            (None, Some(failure.to_string()))
        }
    };
    let now_ms = engine.clock.now_ms();
    let after = match (&error, RETRY_DELAYS_MS.get(delivery.round_attempts as usize)) {
        (None, _) => AfterAttempt::Delivered,
        (Some(_), Some(delay_ms)) => AfterAttempt::RetryAt(now_ms + delay_ms),
        (Some(_), None) => AfterAttempt::Dead,
    };
    let record = DeliveryAttempt {
        attempt: delivery.attempts,
        at_ms,
        http_status,
        error,
        latency_ms: started.elapsed().as_millis() as i64,
    };
    match engine.store.finish_delivery_attempt(&delivery, record, after, now_ms).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            event_id = %delivery.event_id,
            "delivery attempt outlived its lease; another claim recorded it"
        ),
        Err(e) => tracing::error!(
            event_id = %delivery.event_id,
            "recording a delivery attempt failed; it is sent again after its lease: {e}"
        ),
    }
    // The execution's next event may be claimable now, or this one's retry sooner than
    // what the loop waits for.
    engine.deliveries_wake.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_a_published_vector() {
        // RFC 4231, test case 2.
        let mac = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(mac, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
