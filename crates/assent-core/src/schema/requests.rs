//! Schemas of the small definition requests: get, list, delete and getVersion.

use super::check::{Checker, Str};
use crate::issue::{Issue, Path};
use serde_json::Value;

/// Largest and default page sizes of `definitions/list`.
pub const LIST_PAGE_SIZE_MAX: i64 = 500;
pub const LIST_PAGE_SIZE_DEFAULT: i64 = 50;

/// Cursors are write sequence numbers, kept below 2^53 so JavaScript clients read them whole.
const CURSOR_MAX: i64 = (1 << 53) - 1;

const DEFINITION_ID_MAX: usize = 64;

/// Scope ids that these requests accept and ignore, as typed clients may send them.
const SCOPE_ID: Str<'static> = Str::len(1, 256);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefinitionRef {
    pub definition_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListDefinitions {
    pub page_size: u32,
    pub cursor: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteDefinition {
    pub definition_id: String,
    pub purge: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetDefinitionVersion {
    pub definition_id: String,
    pub version: i64,
}

pub(super) fn finish<T>(c: Checker, value: Option<T>) -> Result<T, Vec<Issue>> {
    match value {
        Some(v) if c.is_clean() => Ok(v),
        _ => Err(c.issues),
    }
}

/// Reads `definitionId` plus the scope ids that these requests accept and ignore.
fn definition_id(c: &mut Checker, body: &Value, extra: &[&str]) -> Option<String> {
    let root = Path::root();
    let mut known = vec!["definitionId", "organizationId", "documentId"];
    known.extend_from_slice(extra);
    let obj = c.object(Some(body), &root, &known)?;
    for ignored in ["organizationId", "documentId"] {
        c.opt_string(obj.get(ignored), &root.key(ignored), SCOPE_ID);
    }
    c.string(obj.get("definitionId"), &root.key("definitionId"), Str::len(1, DEFINITION_ID_MAX))
}

/// `definitions/get`: `{definitionId, organizationId?, documentId?}`.
pub fn parse_get(body: &Value) -> Result<DefinitionRef, Vec<Issue>> {
    let mut c = Checker::new();
    let id = definition_id(&mut c, body, &[]);
    finish(c, id.map(|definition_id| DefinitionRef { definition_id }))
}

/// `definitions/list`: `{pageSize?, cursor?, organizationId?, documentId?}`; the scope ids
/// filter nothing.
pub fn parse_list(body: &Value) -> Result<ListDefinitions, Vec<Issue>> {
    let mut c = Checker::new();
    let root = Path::root();
    let known = ["pageSize", "cursor", "organizationId", "documentId"];
    let Some(obj) = c.object(Some(body), &root, &known) else {
        return Err(c.issues);
    };
    for ignored in ["organizationId", "documentId"] {
        c.opt_string(obj.get(ignored), &root.key(ignored), SCOPE_ID);
    }
    let page_size = c
        .opt_int(obj.get("pageSize"), &root.key("pageSize"), 1, LIST_PAGE_SIZE_MAX)
        .unwrap_or(LIST_PAGE_SIZE_DEFAULT);
    let cursor = c.opt_int(obj.get("cursor"), &root.key("cursor"), 0, CURSOR_MAX);
    finish(c, Some(ListDefinitions { page_size: page_size as u32, cursor }))
}

/// `definitions/delete`: `{definitionId, purge?, organizationId?, documentId?}`.
pub fn parse_delete(body: &Value) -> Result<DeleteDefinition, Vec<Issue>> {
    let mut c = Checker::new();
    let id = definition_id(&mut c, body, &["purge"]);
    let purge = body.get("purge");
    let purge = c.opt_bool(purge, &Path::root().key("purge")).unwrap_or(false);
    finish(c, id.map(|definition_id| DeleteDefinition { definition_id, purge }))
}

/// `definitions/getVersion`: `{definitionId, version}`.
pub fn parse_get_version(body: &Value) -> Result<GetDefinitionVersion, Vec<Issue>> {
    let mut c = Checker::new();
    let id = definition_id(&mut c, body, &["version"]);
    let version = c.int(body.get("version"), &Path::root().key("version"), 1, CURSOR_MAX);
    let parsed = id.zip(version);
    finish(
        c,
        parsed.map(|(definition_id, version)| GetDefinitionVersion { definition_id, version }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_defaults_and_limits() {
        assert_eq!(parse_list(&json!({})), Ok(ListDefinitions { page_size: 50, cursor: None }));
        let scoped = parse_list(&json!({"organizationId": "org", "documentId": "doc"}));
        assert_eq!(scoped, Ok(ListDefinitions { page_size: 50, cursor: None }));
        assert!(parse_list(&json!({"organizationId": ""})).is_err());
        let too_big = parse_list(&json!({"pageSize": 501})).unwrap_err();
        assert_eq!(too_big[0].headline(), "Number must be less than or equal to 500 for pageSize");
        let not_int = parse_list(&json!({"cursor": "12"})).unwrap_err();
        assert_eq!(not_int[0].headline(), "Expected number, received string for cursor");
    }

    #[test]
    fn get_requires_an_id_and_ignores_scope_ids() {
        let ok = parse_get(&json!({"definitionId": "abc", "organizationId": "org"}));
        assert_eq!(ok, Ok(DefinitionRef { definition_id: "abc".into() }));
        let missing = parse_get(&json!({})).unwrap_err();
        assert_eq!(missing[0].headline(), "Required for definitionId");
        let extra = parse_get(&json!({"definitionId": "abc", "x": 1})).unwrap_err();
        assert_eq!(extra[0].message, "Unrecognized key(s) in object: 'x'");
    }

    #[test]
    fn delete_and_get_version_read_their_fields() {
        let del = parse_delete(&json!({"definitionId": "abc", "purge": true})).unwrap();
        assert!(del.purge);
        let null_purge = parse_delete(&json!({"definitionId": "abc", "purge": null})).unwrap_err();
        assert_eq!(null_purge[0].headline(), "Expected boolean, received null for purge");
        let v = parse_get_version(&json!({"definitionId": "abc", "version": 2})).unwrap();
        assert_eq!(v.version, 2);
        assert!(parse_get_version(&json!({"definitionId": "abc", "version": 0})).is_err());
    }
}
