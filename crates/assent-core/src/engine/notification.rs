//! Notification steps: the message of each attempt rendered from the node's templates, or
//! the step failed at once when the node cannot make one.

use super::state::ErrorInfo;
use super::{rollup, NotificationMessage, Run};
use crate::model::{Channel, NotificationConfig, NotificationFormat};
use crate::template::{render, Escape, Rendered};
use serde_json::{json, Value};

/// Longest rendered body, in bytes; a longer one is cut there.
pub const BODY_MAX_BYTES: usize = 128 * 1024;
/// Longest rendered subject, in bytes; a longer one is cut there.
pub const SUBJECT_MAX_BYTES: usize = 8 * 1024;

const BLOCKS_INVALID: &str = "notification-slack-blocks-invalid-json";

/// The message for the step's next attempt, or the error that fails the step without one.
pub(crate) fn message(
    run: &Run,
    index: usize,
    config: &NotificationConfig,
) -> Result<NotificationMessage, ErrorInfo> {
    let ctx = context(run, index);
    match config.channel {
        Channel::Email => email(config, &ctx),
        Channel::Slack => slack(config, &ctx),
    }
}

/// Fails the step for a node that cannot make a message; the event names the reason, as
/// configuration failures do.
pub(crate) fn fail(run: &mut Run, index: usize, error: ErrorInfo) {
    let data = json!({ "reason": error.code });
    rollup::fail_step(run, index, error, data);
}

/// What templates read: `input` (the step's input: the output of the step that led here, or
/// what a group or loop hands on), `execution` and `step`.
fn context(run: &Run, index: usize) -> Value {
    let (state, step) = (&run.state, run.step(index));
    json!({
        "input": step.input,
        "execution": {
            "executionId": state.execution_id,
            "definitionId": state.definition_id,
            "correlationId": state.correlation_id,
            "triggerContext": state.trigger_context,
        },
        "step": {
            "stepId": step.step_id,
            "nodeId": step.node_id,
            "retryCount": step.retry_count,
            "iteration": step.iteration,
            "startedAt": step.started_at,
        },
    })
}

fn email(config: &NotificationConfig, ctx: &Value) -> Result<NotificationMessage, ErrorInfo> {
    if config.recipients.is_empty() {
        let message = "the notification node has no recipients";
        return Err(ErrorInfo::new("notification-email-no-recipients", message));
    }
    let html = config.format == NotificationFormat::Html;
    let escape = if html { Escape::Html } else { Escape::None };
    let subject = config
        .subject_template
        .as_deref()
        .map(|template| render(template, ctx, Escape::None, SUBJECT_MAX_BYTES).text);
    Ok(NotificationMessage::Email {
        recipients: config.recipients.clone(),
        subject,
        body: render(&config.body_template, ctx, escape, BODY_MAX_BYTES).text,
        html,
    })
}

fn slack(config: &NotificationConfig, ctx: &Value) -> Result<NotificationMessage, ErrorInfo> {
    let target = config.slack_target.clone().filter(|target| !target.is_empty());
    let Some(target) = target else {
        let message = "the notification node has no slackTarget";
        return Err(ErrorInfo::new("notification-slack-no-target", message));
    };
    if config.format != NotificationFormat::SlackBlocks {
        let text = render(&config.body_template, ctx, Escape::Slack, BODY_MAX_BYTES).text;
        return Ok(NotificationMessage::Slack { target, text: Some(text), blocks: None });
    }
    let rendered = render(&config.body_template, ctx, Escape::SlackJson, BODY_MAX_BYTES);
    let blocks = blocks(&rendered)?;
    let fallback = config
        .subject_template
        .as_deref()
        .map(|template| render(template, ctx, Escape::Slack, SUBJECT_MAX_BYTES).text);
    Ok(NotificationMessage::Slack { target, text: fallback, blocks: Some(blocks) })
}

/// A rendered `slack-blocks` body: a JSON array of objects.
fn blocks(rendered: &Rendered) -> Result<Value, ErrorInfo> {
    let invalid = |why: String| ErrorInfo::new(BLOCKS_INVALID, format!("the rendered body {why}"));
    if rendered.truncated {
        return Err(invalid(format!("is longer than {BODY_MAX_BYTES} bytes")));
    }
    let value: Value = serde_json::from_str(&rendered.text)
        .map_err(|e| invalid(format!("is not valid JSON ({e})")))?;
    match &value {
        Value::Array(blocks) if blocks.iter().all(Value::is_object) => Ok(value),
        _ => Err(invalid("is not a JSON array of block objects".to_owned())),
    }
}
