"""Drives Assent with the velt-py SDK's WorkflowService, unchanged but for its base URL.

Reads ASSENT_BASE_URL, ASSENT_API_KEY, ASSENT_AUTH_TOKEN and ASSENT_EXAMPLES from the
environment; exits non-zero with a message on the first answer that is not as expected.
"""
import json
import os
import sys

from velt_py.models.workflow import (
    CreateWorkflowDefinitionRequest,
    DeleteWorkflowDefinitionRequest,
    GetWorkflowDefinitionRequest,
    ListWorkflowDefinitionsRequest,
    UpdateWorkflowDefinitionRequest,
)
from velt_py.services.api.workflow_service import WorkflowService


def expect(condition, what, answer):
    if not condition:
        sys.exit(f"{what}: {json.dumps(answer)}")


def main():
    service = WorkflowService(os.environ["ASSENT_API_KEY"], os.environ["ASSENT_AUTH_TOKEN"])
    service.VELT_API_BASE_URL = os.environ["ASSENT_BASE_URL"]
    with open(os.path.join(os.environ["ASSENT_EXAMPLES"], "revision-loop.json")) as f:
        body = json.load(f)

    created = service.createDefinition(CreateWorkflowDefinitionRequest(**body))
    expect(created.get("result", {}).get("version") == 1, "create", created)
    loops = created["result"]["compiled"]["loops"]
    expect(loops[0]["loopId"] == "loop_review__to__draft", "compiled loop", created)

    got = service.getDefinition(GetWorkflowDefinitionRequest(definitionId=body["definitionId"]))
    expect(got.get("result") == created["result"], "get", got)

    update = UpdateWorkflowDefinitionRequest(**body, ifVersion=1)
    update.name = "Renamed by velt-py"
    updated = service.updateDefinition(update)
    expect(updated.get("result", {}).get("version") == 2, "update", updated)

    stale = service.updateDefinition(update)
    message = stale.get("error", {}).get("message")
    expect(message == "Version conflict: expected 1, current 2", "stale update", stale)

    listed = service.listDefinitions(ListWorkflowDefinitionsRequest(pageSize=10))
    ids = [item["definitionId"] for item in listed.get("result", {}).get("items", [])]
    expect(ids == [body["definitionId"]], "list", listed)

    deleted = service.deleteDefinition(
        DeleteWorkflowDefinitionRequest(definitionId=body["definitionId"], purge=True))
    expect(deleted.get("result", {}).get("purged") is True, "delete", deleted)
    print("velt-py definitions: ok")


if __name__ == "__main__":
    main()
