//! Notification steps: the rendered message in the work item, failures found before any
//! sending, retries that render again, and how delivery outcomes end the step.

use super::*;

/// A mock agent whose output becomes the notification's `input`, then the notification.
fn after_mock(config: Value) -> Value {
    definition(
        vec![mock("check"), json!({ "nodeId": "tell", "type": "notification", "config": config })],
        vec![edge("check", "tell", "always")],
    )
}

fn message_of(h: &Harness) -> NotificationMessage {
    match h.last.work.first() {
        Some(WorkItem::SendNotification { message, .. }) => (**message).clone(),
        other => panic!("expected a notification, got {other:?}"),
    }
}

#[test]
fn messages_are_rendered_from_input_execution_and_step() {
    let context = json!({ "doc": { "title": "Q3 <plan>", "tags": ["a", "b"] } });
    let email = |body: &str, format: &str| {
        json!({ "channel": "email", "recipients": ["a@example.com", "b@example.com"],
                "subjectTemplate": "Review {{execution.triggerContext.doc.title}}",
                "bodyTemplate": body, "format": format })
    };
    let slack = |body: &str, format: &str| {
        json!({ "channel": "slack", "slackTarget": "C0123", "bodyTemplate": body,
                "subjectTemplate": "{{execution.triggerContext.doc.title}}", "format": format })
    };
    let cases = [
        (
            email("{{input.decision}} by {{input.agentId}} in {{execution.executionId}}", "text"),
            NotificationMessage::Email {
                recipients: vec!["a@example.com".into(), "b@example.com".into()],
                subject: Some("Review Q3 <plan>".into()),
                body: "approve by __mock__ in exec_1000_abcdefgh".into(),
                html: false,
            },
        ),
        (
            email("<p>{{execution.triggerContext.doc.title}} {{missing.x}}</p>", "html"),
            NotificationMessage::Email {
                recipients: vec!["a@example.com".into(), "b@example.com".into()],
                subject: Some("Review Q3 <plan>".into()),
                body: "<p>Q3 &lt;plan&gt; </p>".into(),
                html: true,
            },
        ),
        (
            slack("{{step.nodeId}} {{step.retryCount}} {{execution.triggerContext.doc}}", "text"),
            NotificationMessage::Slack {
                target: "C0123".into(),
                text: Some(r#"tell 0 {"title":"Q3 &lt;plan&gt;","tags":["a","b"]}"#.into()),
                blocks: None,
            },
        ),
        (
            slack(
                concat!(
                    r#"[{"type":"section","#,
                    r#""text":{"type":"mrkdwn","text":"{{execution.triggerContext.doc}}"}}]"#
                ),
                "slack-blocks",
            ),
            NotificationMessage::Slack {
                target: "C0123".into(),
                text: Some("Q3 &lt;plan&gt;".into()),
                blocks: Some(json!([{ "type": "section", "text": { "type": "mrkdwn",
                    "text": r#"{"title":"Q3 &lt;plan&gt;","tags":["a","b"]}"# } }])),
            },
        ),
    ];
    for (config, expected) in cases {
        let h = start_with(after_mock(config.clone()), context.clone());
        assert_eq!(h.status_of("tell"), StepStatus::Running, "{config}");
        assert_eq!(message_of(&h), expected, "{config}");
    }
}

#[test]
fn a_root_notification_reads_an_empty_input() {
    let hook = "https://hooks.slack.com/services/T/B/x";
    let config = json!({ "channel": "slack", "slackTarget": hook,
                         "bodyTemplate": "[{{input}}] [{{input.anything}}]" });
    let body = definition(
        vec![json!({ "nodeId": "tell", "type": "notification", "config": config })],
        vec![],
    );
    let h = start(body);
    let NotificationMessage::Slack { target, text, .. } = message_of(&h) else { panic!("slack") };
    assert_eq!(target, hook);
    assert_eq!(text.as_deref(), Some("[{}] []"));
}

#[test]
fn blocks_that_are_not_a_json_array_fail_the_step_at_once() {
    let cases = [
        r#"[{"type":"section","text":{"type":"plain_text","text":"x"}"#,
        r#"{"type":"section"}"#,
        r#"["section"]"#,
        "not json {{input.decision}}",
        r#"[{"text":{{input.missing}}}]"#,
    ];
    for body in cases {
        let config = json!({ "channel": "slack", "slackTarget": "C0123", "bodyTemplate": body,
                             "format": "slack-blocks" });
        let h = start(after_mock(config));
        let step = h.step("tell");
        assert_eq!(step.status, StepStatus::Failed, "{body}");
        let code = step.error.as_ref().map(|e| e.code.as_str());
        assert_eq!(code, Some("notification-slack-blocks-invalid-json"), "{body}");
        assert!(h.last.work.is_empty(), "{body}: nothing is sent");
        let failed = &h.events_of("step.failed")[0].data;
        assert_eq!(failed, &json!({ "reason": "notification-slack-blocks-invalid-json" }));
        assert_eq!(h.failure_code(), Some("step-failed"));
    }
}

#[test]
fn each_retry_renders_again() {
    let config = json!({ "channel": "email", "recipients": ["a@example.com"],
                         "bodyTemplate": "attempt {{step.retryCount}}" });
    let mut h = start(after_mock(config));
    let tell = h.step_id("tell");
    let data = json!({ "channel": "email", "retryClass": "transient" });
    for attempt in 0..3u32 {
        let NotificationMessage::Email { body, .. } = message_of(&h) else { panic!("email") };
        assert_eq!(body, format!("attempt {attempt}"));
        let outcome = WorkOutcome::TransientFailure {
            code: "notification-email-delivery-failed".into(),
            message: "no recipient was accepted".into(),
            data: data.clone(),
        };
        h.apply(Command::WorkDone { step_id: tell.clone(), attempt, outcome });
        h.apply(Command::TimerFired { kind: TimerKind::Retry, step_id: tell.clone() });
    }
    let NotificationMessage::Email { body, .. } = message_of(&h) else { panic!("email") };
    assert_eq!(body, "attempt 3");
}

#[test]
fn delivery_outcomes() {
    let config =
        json!({ "channel": "email", "recipients": ["a@example.com"], "bodyTemplate": "b" });
    let terminal = json!({ "channel": "email", "retryClass": "terminal" });
    let cases = [
        (
            WorkOutcome::Delivered { output: agent::as_map(json!({ "channel": "email" })) },
            StepStatus::Completed,
            None,
            ExecutionStatus::Completed,
        ),
        (
            WorkOutcome::PermanentFailure {
                code: "notification-email-not-configured".into(),
                message: "no SMTP server".into(),
                data: terminal.clone(),
            },
            StepStatus::Failed,
            Some("notification-email-not-configured"),
            ExecutionStatus::Failed,
        ),
    ];
    for (outcome, status, code, execution) in cases {
        let mut h = start(after_mock(config.clone()));
        let tell = h.step_id("tell");
        h.apply(Command::WorkDone { step_id: tell, attempt: 0, outcome });
        let step = h.step("tell");
        assert_eq!(step.status, status);
        assert_eq!(step.error.as_ref().map(|e| e.code.as_str()), code);
        assert_eq!(h.state.status, execution);
        if status == StepStatus::Failed {
            assert_eq!(h.events_of("step.failed")[0].data, terminal);
        } else {
            assert_eq!(step.output["channel"], "email");
        }
    }
}
