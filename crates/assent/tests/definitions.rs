//! The definitions API over HTTP: every endpoint's success path, versions, tombstones,
//! paging and workspace isolation.

mod common;

use common::{example, spawn_app, EXAMPLES, T0_MS};
use serde_json::{json, Value};

#[tokio::test]
async fn every_example_is_created_and_read_back_as_written() {
    let app = spawn_app().await;
    for name in EXAMPLES {
        let body = example(name);
        let created = app.call("definitions/create", body.clone()).await;
        let view = created.result();
        assert_eq!(view["version"], 1, "{name}");
        assert_eq!(view["status"], "active", "{name}");
        assert_eq!(view["nodes"], body["nodes"], "{name}: nodes are echoed");
        assert_eq!(view["edges"], body["edges"], "{name}: edges are echoed");
        assert!(view.get("webhookConfig").is_none(), "{name}: webhookConfig is write-only");

        let got = app.call("definitions/get", json!({ "definitionId": name })).await;
        assert_eq!(got.result(), view, "{name}: get returns what create returned");
    }
}

#[tokio::test]
async fn the_view_has_every_field_with_nulls_for_unset_ones() {
    let app = spawn_app().await;
    let view = app.call("definitions/create", example("sequential-signoff")).await;
    let view = view.result();
    let keys: Vec<&str> = view.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "definitionId",
            "name",
            "description",
            "version",
            "scope",
            "nodes",
            "edges",
            "groups",
            "compiled",
            "triggers",
            "tags",
            "custom",
            "createdAt",
            "updatedAt",
            "status"
        ]
    );
    assert_eq!(
        view["scope"],
        json!({"level": "apiKey", "organizationId": null, "documentId": null})
    );
    assert_eq!((view["groups"].clone(), view["tags"].clone()), (Value::Null, Value::Null));
    assert_eq!(
        (view["createdAt"].clone(), view["updatedAt"].clone()),
        (json!(T0_MS), json!(T0_MS))
    );
}

#[tokio::test]
async fn the_reference_example_compiles_its_three_edges() {
    let app = spawn_app().await;
    let view = app.call("definitions/create", example("marketing-copy-approval")).await;
    let compiled = &view.result()["compiled"];
    let decision = |d: &str| json!({"op": "eq", "args": [{"var": "output.decision"}, d]});
    assert_eq!(
        compiled["forwardEdges"],
        json!([
            {"from": "agent-draft", "to": "legal-review", "role": "always", "when": null,
             "fromGroupId": null, "toGroupId": null},
            {"from": "legal-review", "to": "agent-publish", "role": "approve",
             "when": decision("approve"), "fromGroupId": null, "toGroupId": null},
            {"from": "legal-review", "to": "agent-revise", "role": "reject",
             "when": decision("reject"), "fromGroupId": null, "toGroupId": null},
        ])
    );
    assert_eq!(compiled["loops"], json!([]));
}

#[tokio::test]
async fn create_refuses_an_id_held_by_an_active_definition() {
    let app = spawn_app().await;
    app.call("definitions/create", example("revision-loop")).await.result();
    let again = app.call("definitions/create", example("revision-loop")).await;
    again.error(409, "ALREADY_EXISTS");
}

#[tokio::test]
async fn updates_bump_the_version_and_keep_every_earlier_one() {
    let app = spawn_app().await;
    let mut body = example("sequential-signoff");
    app.call("definitions/create", body.clone()).await.result();

    app.clock.advance_ms(1_000);
    body["name"] = json!("Renamed");
    body["ifVersion"] = json!(1);
    let updated = app.call("definitions/update", body.clone()).await;
    let view = updated.result();
    assert_eq!((view["version"].clone(), view["name"].clone()), (json!(2), json!("Renamed")));
    assert_eq!(view["createdAt"], T0_MS);
    assert_eq!(view["updatedAt"], T0_MS + 1_000);

    let stale = app.call("definitions/update", body.clone()).await;
    let msg = stale.error(400, "FAILED_PRECONDITION");
    assert_eq!(msg, "Version conflict: expected 1, current 2");

    let id = body["definitionId"].clone();
    let v1 = app.call("definitions/getVersion", json!({"definitionId": id, "version": 1})).await;
    assert_eq!(v1.result()["name"], example("sequential-signoff")["name"]);
    assert_eq!(v1.result()["version"], 1);
    let v3 = app.call("definitions/getVersion", json!({"definitionId": id, "version": 3})).await;
    v3.error(404, "NOT_FOUND");
}

#[tokio::test]
async fn update_is_a_full_replace_and_needs_if_version() {
    let app = spawn_app().await;
    let mut body = example("sla-escalation");
    body["tags"] = json!(["ops"]);
    app.call("definitions/create", body.clone()).await.result();

    let missing = app.call("definitions/update", example("sla-escalation")).await;
    assert_eq!(missing.error(400, "INVALID_ARGUMENT"), "Required for ifVersion");

    let mut replace = example("sla-escalation");
    replace["ifVersion"] = json!(1);
    let view = app.call("definitions/update", replace).await;
    assert_eq!(view.result()["tags"], Value::Null, "omitted fields are not kept");

    let mut unknown = example("sequential-signoff");
    unknown["ifVersion"] = json!(1);
    app.call("definitions/update", unknown).await.error(404, "NOT_FOUND");
}

#[tokio::test]
async fn a_view_is_not_accepted_back_as_an_update() {
    let app = spawn_app().await;
    let view = app.call("definitions/create", example("revision-loop")).await.result().clone();
    let mut body = view.clone();
    body["ifVersion"] = json!(1);
    let answer = app.call("definitions/update", body).await;
    answer.error(400, "INVALID_ARGUMENT");
    let issues = answer.body["error"]["details"]["issues"].as_array().unwrap().clone();
    assert!(issues.iter().any(|i| i["code"] == "unrecognized_keys"), "{issues:?}");
}

#[tokio::test]
async fn delete_tombstones_and_a_re_create_starts_a_new_lineage() {
    let app = spawn_app().await;
    let mut body = example("revision-loop");
    app.call("definitions/create", body.clone()).await.result();
    body["ifVersion"] = json!(1);
    app.call("definitions/update", body.clone()).await.result();

    let id = json!({"definitionId": "revision-loop"});
    let deleted = app.call("definitions/delete", id.clone()).await;
    assert_eq!(
        deleted.result(),
        &json!({"deleted": true, "purged": false, "definitionId": "revision-loop"})
    );
    app.call("definitions/get", id.clone()).await.error(404, "NOT_FOUND");
    app.call("definitions/delete", id.clone()).await.error(404, "NOT_FOUND");
    let listed = app.call("definitions/list", json!({})).await;
    assert_eq!(listed.result()["items"], json!([]));

    let recreated = app.call("definitions/create", example("revision-loop")).await;
    assert_eq!(recreated.result()["version"], 1);
    let old = json!({"definitionId": "revision-loop", "version": 2});
    app.call("definitions/getVersion", old).await.error(404, "NOT_FOUND");
}

#[tokio::test]
async fn purge_removes_the_definition_and_its_versions() {
    let app = spawn_app().await;
    app.call("definitions/create", example("parallel-quorum")).await.result();
    let purge = json!({"definitionId": "parallel-quorum", "purge": true});
    let answer = app.call("definitions/delete", purge).await;
    assert_eq!(answer.result()["purged"], true);
    let v1 = json!({"definitionId": "parallel-quorum", "version": 1});
    app.call("definitions/getVersion", v1).await.error(404, "NOT_FOUND");
    app.call("definitions/create", example("parallel-quorum")).await.result();
}

#[tokio::test]
async fn list_pages_through_many_definitions_written_in_one_millisecond() {
    let app = spawn_app().await;
    let total = 23;
    for i in 0..total {
        let mut body = example("sequential-signoff");
        body["definitionId"] = json!(format!("signoff-{i:03}"));
        app.call("definitions/create", body).await.result();
    }
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let mut req = json!({"pageSize": 5});
        if !cursor.is_null() {
            req["cursor"] = cursor.clone();
        }
        let page = app.call("definitions/list", req).await;
        let page = page.result().clone();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["definitionId"].as_str().unwrap().to_owned());
        }
        cursor = page["nextCursor"].clone();
        if cursor.is_null() {
            break;
        }
        assert!(cursor.is_u64(), "cursors are integers: {cursor}");
    }
    let expected: Vec<String> = (0..total).rev().map(|i| format!("signoff-{i:03}")).collect();
    assert_eq!(seen, expected, "newest write first, nothing skipped or repeated");
}

#[tokio::test]
async fn validate_checks_without_saving() {
    let app = spawn_app().await;
    let answer = app.call("definitions/validate", example("revision-loop")).await;
    let result = answer.result();
    assert_eq!(result["valid"], true);
    assert_eq!(result["compiled"]["loops"][0]["loopId"], "loop_review__to__draft");
    let get = app.call("definitions/get", json!({"definitionId": "revision-loop"})).await;
    get.error(404, "NOT_FOUND");

    let mut as_update = example("revision-loop");
    as_update["ifVersion"] = json!(1);
    app.call("definitions/validate", as_update.clone()).await.error(404, "NOT_FOUND");
    app.call("definitions/create", example("revision-loop")).await.result();
    assert_eq!(app.call("definitions/validate", as_update.clone()).await.result()["valid"], true);
    as_update["ifVersion"] = json!(4);
    app.call("definitions/validate", as_update).await.error(400, "FAILED_PRECONDITION");
}

#[tokio::test]
async fn a_workspace_sees_nothing_of_another() {
    let app = spawn_app().await;
    let other = app.other_workspace().await;
    app.call("definitions/create", example("revision-loop")).await.result();
    let id = json!({"definitionId": "revision-loop"});

    app.call_as(&other, "definitions/get", id.clone()).await.error(404, "NOT_FOUND");
    let listed = app.call_as(&other, "definitions/list", json!({})).await;
    assert_eq!(listed.result()["items"], json!([]));
    let mut update = example("revision-loop");
    update["ifVersion"] = json!(1);
    app.call_as(&other, "definitions/update", update.clone()).await.error(404, "NOT_FOUND");
    app.call_as(&other, "definitions/validate", update).await.error(404, "NOT_FOUND");
    let v1 = json!({"definitionId": "revision-loop", "version": 1});
    app.call_as(&other, "definitions/getVersion", v1).await.error(404, "NOT_FOUND");
    app.call_as(&other, "definitions/delete", id.clone()).await.error(404, "NOT_FOUND");

    // The other workspace may use the same id for its own definition.
    app.call_as(&other, "definitions/create", example("revision-loop")).await.result();
    assert_eq!(app.call("definitions/get", id).await.result()["version"], 1);
}
