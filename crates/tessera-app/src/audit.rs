//! Building audit entries: who, what, which target and a field-by-field diff.
//!
//! Diffs are computed from the API views (which never carry a secret, a digest or a
//! password hash), so the audit log cannot leak what the views do not show.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tessera_core::AuditEntry;

use crate::principal::Principal;

/// Fields that change on every write and say nothing about what was changed.
const IGNORED: &[&str] = &["updated_at", "expired"];

/// `{field: {"from": …, "to": …}}` for each field that differs between two JSON objects.
pub fn diff(before: Option<&Value>, after: Option<&Value>) -> Value {
    let empty = Map::new();
    let before = before.and_then(Value::as_object).unwrap_or(&empty);
    let after = after.and_then(Value::as_object).unwrap_or(&empty);
    let mut changes = Map::new();
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for key in keys {
        if IGNORED.contains(&key.as_str()) {
            continue;
        }
        let from = before.get(key).unwrap_or(&Value::Null);
        let to = after.get(key).unwrap_or(&Value::Null);
        if from != to {
            changes.insert(key.clone(), serde_json::json!({ "from": from, "to": to }));
        }
    }
    Value::Object(changes)
}

/// An audit entry for `principal` doing `action` to `target`.
pub fn entry(
    principal: &Principal,
    at: DateTime<Utc>,
    action: &str,
    target: impl Into<String>,
    changes: Value,
) -> AuditEntry {
    AuditEntry {
        at,
        actor: principal.actor.clone(),
        action: action.to_owned(),
        target: target.into(),
        client_address: principal.client_address.clone(),
        changes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_lists_changed_fields_only() {
        let before = json!({"name": "a", "status": "active", "updated_at": "x"});
        let after = json!({"name": "b", "status": "active", "updated_at": "y"});
        assert_eq!(
            diff(Some(&before), Some(&after)),
            json!({"name": {"from": "a", "to": "b"}})
        );
        assert_eq!(
            diff(None, Some(&json!({"name": "a"}))),
            json!({"name": {"from": null, "to": "a"}})
        );
    }
}
