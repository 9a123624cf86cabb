"""Drives an execution through the velt-py SDK's WorkflowService: dispatch and its replay,
get, a reviewer decision, events, list and cancel.

Reads ASSENT_BASE_URL, ASSENT_API_KEY, ASSENT_AUTH_TOKEN and ASSENT_EXAMPLES from the
environment; exits non-zero with a message on the first answer that is not as expected.
"""
import json
import os
import sys

from velt_py.models.workflow import (
    CancelExecutionRequest,
    CreateWorkflowDefinitionRequest,
    DispatchExecutionRequest,
    GetExecutionEventsRequest,
    GetExecutionRequest,
    ListExecutionsRequest,
    ListWorkflowDefinitionsRequest,
    RecordReviewerDecisionRequest,
)
from velt_py.services.api.workflow_service import WorkflowService


def expect(condition, what, answer):
    if not condition:
        sys.exit(f"{what}: {json.dumps(answer)}")


def waiting_step(service, execution_id, node_id):
    view = service.getExecution(GetExecutionRequest(executionId=execution_id))
    steps = [s for s in view.get("result", {}).get("steps", []) if s["nodeId"] == node_id]
    expect(steps and steps[0]["status"] == "waiting", f"{node_id} waiting", view)
    return steps[0]["stepId"]


def main():
    service = WorkflowService(os.environ["ASSENT_API_KEY"], os.environ["ASSENT_AUTH_TOKEN"])
    service.VELT_API_BASE_URL = os.environ["ASSENT_BASE_URL"]
    with open(os.path.join(os.environ["ASSENT_EXAMPLES"], "marketing-copy-approval.json")) as f:
        body = json.load(f)
    created = service.createDefinition(CreateWorkflowDefinitionRequest(**body))
    expect("result" in created, "create", created)
    scoped = service.listDefinitions(ListWorkflowDefinitionsRequest(organizationId="org-1"))
    expect(len(scoped.get("result", {}).get("items", [])) == 1, "list with scope ids", scoped)

    dispatch = DispatchExecutionRequest(
        definitionId=body["definitionId"], idempotencyKey="velt-py-1",
        triggerContext={"assetId": "asset_8f3"})
    first = service.dispatchExecution(dispatch)
    expect(first.get("result", {}).get("deduplicated") is False, "dispatch", first)
    again = service.dispatchExecution(dispatch)
    expect(again.get("result") == dict(first["result"], deduplicated=True), "replay", again)
    execution_id = first["result"]["executionId"]

    step_id = waiting_step(service, execution_id, "legal-review")
    decided = service.recordReviewerDecision(RecordReviewerDecisionRequest(
        executionId=execution_id, stepId=step_id, reviewerId="u-legal", decision="approve"))
    expect(decided.get("result", {}).get("aggregatorStatus") == "resolved", "decision", decided)

    events = service.getExecutionEvents(GetExecutionEventsRequest(executionId=execution_id))
    types = [e["type"] for e in events.get("result", {}).get("events", [])]
    expect(types[:1] == ["execution.dispatched"], "events", events)

    listed = service.listExecutions(ListExecutionsRequest(definitionId=body["definitionId"]))
    expect(len(listed.get("result", {}).get("items", [])) == 1, "list executions", listed)

    second = service.dispatchExecution(DispatchExecutionRequest(definitionId=body["definitionId"]))
    other_id = second["result"]["executionId"]
    cancelled = service.cancelExecution(CancelExecutionRequest(executionId=other_id, reason="test"))
    expect(cancelled.get("result") == {"cancelled": True, "executionId": other_id}, "cancel", cancelled)
    print("velt-py executions: ok")


if __name__ == "__main__":
    main()
