//! Human steps: waiting for reviewers, recording their decisions, and the aggregator that
//! resolves when every mandatory reviewer approved and rejects on any rejection.

use super::commands::CommandError;
use super::state::{ReviewerDecision, StepStatus};
use super::{rollup, step_ids, Run};
use crate::model::HumanConfig;
use serde_json::{json, Map, Value};

pub(crate) fn start(run: &mut Run, index: usize, config: &HumanConfig) {
    debug_assert_eq!(run.step(index).status, StepStatus::Running);
    run.step_mut(index).status = StepStatus::Waiting;
    let step_id = run.step(index).step_id.clone();
    let data = json!({
        "waitingForReviewers": config.reviewers.len(),
        "mandatoryCount": mandatory_count(config),
        "resumeKey": step_ids::resume_key(&step_id),
    });
    run.emit("step.awaiting-approval", Some(&step_id), data);
}

fn mandatory_count(config: &HumanConfig) -> usize {
    config.reviewers.iter().filter(|r| r.mandatory).count()
}

/// `pending`, `resolved` or `rejected`, from the decisions recorded so far.
fn aggregator_status(config: &HumanConfig, decisions: &[ReviewerDecision]) -> &'static str {
    let approved =
        |user: &str| decisions.iter().any(|d| d.reviewer_id == user && d.decision == "approve");
    let any_reject = decisions.iter().any(|d| d.decision == "reject");
    let mandatory_approved =
        config.reviewers.iter().filter(|r| r.mandatory).all(|r| approved(&r.user_id));
    if any_reject {
        "rejected"
    } else if mandatory_approved {
        "resolved"
    } else {
        "pending"
    }
}

fn human_config<'a>(run: &Run<'a>, index: usize) -> Option<&'a HumanConfig> {
    match &run.node_of(index).config {
        crate::model::NodeConfig::Human(config) => Some(config),
        _ => None,
    }
}

fn not_recorded(reason: &str, aggregator_status: Value) -> Value {
    json!({
        "recorded": false,
        "aggregatorStatus": aggregator_status,
        "resumeScheduled": false,
        "reason": reason,
    })
}

/// `recordReviewerDecision`: first decision per reviewer wins.
pub(crate) fn record_decision(
    run: &mut Run,
    step_id: &str,
    reviewer_id: &str,
    decision: &str,
    reason: Option<&str>,
) -> Result<Value, CommandError> {
    let index =
        run.state.step_index(step_id).ok_or_else(|| CommandError::step_not_found(step_id))?;
    let Some(config) = human_config(run, index) else {
        return Err(CommandError::precondition(format!("step {step_id} is not a human step")));
    };
    let step = run.step(index);
    let current = aggregator_status(config, &step.decisions);

    if step.decisions.iter().any(|d| d.reviewer_id == reviewer_id) {
        return Ok(not_recorded("idempotent", current.into()));
    }
    if step.status.is_terminal() {
        let settled = step.output.get("aggregatorStatus").cloned().unwrap_or(current.into());
        return Ok(not_recorded("already-terminal", settled));
    }
    if step.status != StepStatus::Waiting {
        return Err(CommandError::precondition(format!("step {step_id} is not waiting")));
    }
    if !config.reviewers.iter().any(|r| r.user_id == reviewer_id) {
        return Ok(not_recorded("unknown-responder", current.into()));
    }

    let recorded = ReviewerDecision {
        reviewer_id: reviewer_id.to_owned(),
        decision: decision.to_owned(),
        reason: reason.map(str::to_owned),
        decided_at: run.now_ms,
    };
    run.step_mut(index).decisions.push(recorded);
    let data = json!({ "reviewerId": reviewer_id, "decision": decision });
    run.emit("step.response-recorded", Some(step_id), data);
    Ok(after_decision(run, index, config, reviewer_id, reason))
}

fn after_decision(
    run: &mut Run,
    index: usize,
    config: &HumanConfig,
    reviewer_id: &str,
    reason: Option<&str>,
) -> Value {
    let status = aggregator_status(config, &run.step(index).decisions);
    let mut result = json!({ "recorded": true, "aggregatorStatus": status });
    if status == "rejected" {
        result["rejectionReason"] = json!(reason);
    }
    result["resumeScheduled"] = json!(status != "pending");
    if status == "pending" {
        return result;
    }

    let mut output = aggregate_output(run, index, config, status);
    if status == "rejected" {
        let mandatory = config.reviewers.iter().any(|r| r.user_id == reviewer_id && r.mandatory);
        output.insert("rejectedBy".into(), json!(reviewer_id));
        output.insert("rejectorMandatory".into(), json!(mandatory));
        output.insert("rejectionReason".into(), json!(reason));
    }
    resume(run, index, output);
    result
}

/// The output of a human step that resumed through the aggregator.
fn aggregate_output(
    run: &Run,
    index: usize,
    config: &HumanConfig,
    status: &str,
) -> Map<String, Value> {
    let step = run.step(index);
    let count = |decision: &str| step.decisions.iter().filter(|d| d.decision == decision).count();
    let mandatory_approvals = config
        .reviewers
        .iter()
        .filter(|r| r.mandatory)
        .filter(|r| {
            step.decisions.iter().any(|d| d.reviewer_id == r.user_id && d.decision == "approve")
        })
        .count();
    let decision = if status == "resolved" { "approve" } else { "reject" };
    let reviewers: Vec<Value> = config
        .reviewers
        .iter()
        .map(|r| json!({ "userId": r.user_id, "mandatory": r.mandatory }))
        .collect();
    let reviewer_ids: Vec<&str> = config.reviewers.iter().map(|r| r.user_id.as_str()).collect();
    let output = json!({
        "reviewers": reviewers,
        "reviewerIds": reviewer_ids,
        "reviewerEmails": config.reviewer_emails,
        "commentBody": config.comment_body,
        "aggregatorStatus": status,
        "approveCount": count("approve"),
        "rejectCount": count("reject"),
        "totalResponses": step.decisions.len(),
        "mandatoryCount": mandatory_count(config),
        "mandatoryApproveCount": mandatory_approvals,
        "decision": decision,
        "approved": decision == "approve",
        "resumedAt": run.now_ms,
        "resumeKey": step_ids::resume_key(&step.step_id),
    });
    match output {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn resume(run: &mut Run, index: usize, output: Map<String, Value>) {
    let step_id = run.step(index).step_id.clone();
    run.emit("step.resumed", Some(&step_id), Value::Null);
    let data = json!({
        "aggregatorStatus": output["aggregatorStatus"],
        "nodeType": "human",
        "decision": output["decision"],
    });
    rollup::complete_step(run, index, output, data);
}
