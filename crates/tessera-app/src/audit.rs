//! Building audit entries: who, what, which target and a field-by-field diff.
//!
//! Diffs are computed from the API views (which never carry a secret, a digest or a
//! password hash), so the audit log cannot leak what the views do not show.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tessera_core::AuditEntry;

use tessera_api_types::{AuditPage, AuditView};
use tessera_core::validate::{self, FieldErrors};
use tessera_core::{AdminPermission, AuditFilter};
use tessera_store::AuditQuery;

use crate::context::Context;
use crate::error::{AppError, AppResult};
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

/// `value` as the audit log records it (an API view, so no secret can enter). A view
/// that cannot be turned into JSON is an error, never an empty record.
pub(crate) fn snapshot(value: &impl serde::Serialize) -> AppResult<Value> {
    serde_json::to_value(value)
        .map_err(|error| AppError::Internal(format!("cannot record an audit snapshot: {error}")))
}

/// Checks an audit filter's text values and decodes its cursor into a store query;
/// every bad value is named. Pure; public for the fuzz targets (`fuzz/`).
pub fn audit_query(filter: AuditFilter) -> AppResult<AuditQuery> {
    let mut errors = FieldErrors::default();
    let before = match filter.cursor.as_deref() {
        None => None,
        Some(text) => {
            let parsed = text.parse::<i64>().ok().filter(|id| *id > 0);
            if parsed.is_none() {
                errors.add("cursor", "is not a cursor of the audit log");
            }
            parsed
        }
    };
    for (field, text) in [
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("target", &filter.target),
    ] {
        if let Some(text) = text {
            errors.collect(validate::single_line(field, text));
        }
    }
    errors.into_result()?;
    Ok(AuditQuery {
        actor: filter.actor.filter(|v| !v.is_empty()),
        action: filter.action.filter(|v| !v.is_empty()),
        target: filter.target.filter(|v| !v.is_empty()),
        since: filter.since,
        until: filter.until,
        before,
        limit: filter.limit.get() + 1,
    })
}

/// Reading the audit log (each service writes its own rows with its changes).
#[derive(Debug, Clone)]
pub struct Audit {
    cx: Context,
}

impl Audit {
    pub(crate) fn new(cx: Context) -> Self {
        Self { cx }
    }

    /// The audit log, newest first (`audit.read`). `actor`, `action` and `target`
    /// match exactly; `since` is inclusive, `until` exclusive.
    pub async fn list(&self, principal: &Principal, filter: AuditFilter) -> AppResult<AuditPage> {
        principal.require(AdminPermission::AuditRead)?;
        let query = audit_query(filter)?;
        // The query asks for one row more than a page, to tell whether another follows.
        let limit = query.limit.saturating_sub(1);
        let mut rows = self.cx.store.list_audit(&query).await?;
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|row| row.id.to_string())
        } else {
            None
        };
        let items = rows
            .into_iter()
            .map(|row| AuditView {
                id: row.id,
                at: row.entry.at,
                actor: row.entry.actor,
                action: row.entry.action,
                target: row.entry.target,
                client_address: row.entry.client_address,
                changes: row.entry.changes,
            })
            .collect();
        Ok(AuditPage { items, next_cursor })
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
