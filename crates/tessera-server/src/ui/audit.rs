//! The audit log: who changed what, newest first, with filters kept in the URL and
//! the API's cursor for the next page.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::NaiveDate;
use serde::Deserialize;
use tessera_api_types::{AuditParams, AuditView};
use tessera_app::AppError;
use tessera_core::validate::FieldErrors;

use crate::AppState;
use crate::ui::console::{Console, UiResult, non_blank};
use crate::ui::page::{Layout, Time, render, render_with};

/// The page's query string: the API's filters, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    /// A day (`2026-01-31`, from its start) or an RFC 3339 time.
    #[serde(default)]
    since: String,
    /// A day (through its end) or an RFC 3339 time.
    #[serde(default)]
    until: String,
    #[serde(default)]
    cursor: String,
}

/// A day of the date picker as the API's time: its start, or (for `until`, which is
/// exclusive) the start of the next day. Anything else is passed on as typed.
fn bound(text: &str, through_end: bool) -> Option<String> {
    let text = non_blank(text)?;
    match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        Ok(day) => {
            let day = if through_end { day.succ_opt()? } else { day };
            Some(format!("{}T00:00:00Z", day.format("%Y-%m-%d")))
        }
        Err(_) => Some(text),
    }
}

/// `/admin/audit?…` with the non-empty parameters of `pairs`.
fn audit_url(pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs.iter().filter(|(_, value)| !value.is_empty()) {
        query.append_pair(key, value);
    }
    let query = query.finish();
    if query.is_empty() {
        "/admin/audit".to_owned()
    } else {
        format!("/admin/audit?{query}")
    }
}

/// One row of the table.
#[derive(Debug)]
struct AuditRow {
    at: Time,
    actor: String,
    action: String,
    target: String,
    client_address: Option<String>,
    /// What changed, one line per field.
    changes: Vec<Change>,
}

/// One changed field of an audit entry: `name: from → to`, values as compact JSON.
#[derive(Debug)]
struct Change {
    field: String,
    from: Option<String>,
    to: Option<String>,
}

/// The audit diff `{field: {from, to}}` as lines; anything of another shape is shown
/// whole under `changes`.
fn changes_of(changes: &serde_json::Value) -> Vec<Change> {
    let shown = |value: Option<&serde_json::Value>| {
        value
            .filter(|value| !value.is_null())
            .map(|value| match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            })
    };
    match changes.as_object() {
        Some(map) => map
            .iter()
            .map(|(field, change)| match change.as_object() {
                Some(pair) if pair.contains_key("from") || pair.contains_key("to") => Change {
                    field: field.clone(),
                    from: shown(pair.get("from")),
                    to: shown(pair.get("to")),
                },
                _ => Change {
                    field: field.clone(),
                    from: None,
                    to: shown(Some(change)),
                },
            })
            .collect(),
        None if changes.is_null() => Vec::new(),
        None => vec![Change {
            field: "changes".into(),
            from: None,
            to: shown(Some(changes)),
        }],
    }
}

impl AuditRow {
    fn new(entry: &AuditView) -> Self {
        Self {
            at: Time::new(entry.at),
            actor: entry.actor.clone(),
            action: entry.action.clone(),
            target: entry.target.clone(),
            client_address: entry.client_address.clone(),
            changes: changes_of(&entry.changes),
        }
    }
}

#[derive(Debug, Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    rows: Vec<AuditRow>,
    query: AuditQuery,
    filtered: bool,
    errors: FieldErrors,
    next_url: Option<String>,
    first_url: Option<String>,
}

impl AuditPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field)
    }
}

/// `GET /admin/audit`.
pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<AuditQuery>,
) -> UiResult {
    let params = AuditParams {
        actor: non_blank(&query.actor),
        action: non_blank(&query.action),
        target: non_blank(&query.target),
        since: bound(&query.since, false),
        until: bound(&query.until, true),
        limit: None,
        cursor: non_blank(&query.cursor),
    };
    let listed = match params.parse() {
        Ok(filter) => state.app.audit().list(&console.principal, filter).await,
        Err(errors) => Err(errors.into()),
    };
    let (page, errors) = match listed {
        Ok(page) => (Some(page), FieldErrors::default()),
        Err(AppError::Validation(errors)) => (None, errors.0),
        Err(error) => return Err(console.fail()(error)),
    };
    let filters = [
        ("actor", query.actor.as_str()),
        ("action", query.action.as_str()),
        ("target", query.target.as_str()),
        ("since", query.since.as_str()),
        ("until", query.until.as_str()),
    ];
    let next_url = page
        .as_ref()
        .and_then(|page| page.next_cursor.as_deref())
        .map(|cursor| {
            let mut pairs = filters.to_vec();
            pairs.push(("cursor", cursor));
            audit_url(&pairs)
        });
    let first_url = (!query.cursor.is_empty()).then(|| audit_url(&filters));
    let filtered = filters.iter().any(|(_, value)| !value.is_empty());
    let view = AuditPage {
        layout: Layout::console(&console, "audit", "audit.title"),
        rows: page
            .map(|page| page.items.iter().map(AuditRow::new).collect())
            .unwrap_or_default(),
        query,
        filtered,
        next_url,
        first_url,
        errors,
    };
    if view.errors.is_empty() {
        Ok(render(&view))
    } else {
        Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &view))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_reads_as_one_line_per_field() {
        let changes = changes_of(&serde_json::json!({
            "name": {"from": "old", "to": "new"},
            "permissions": {"from": null, "to": ["a.b"]},
            "odd": 3
        }));
        let lines: Vec<(String, Option<String>, Option<String>)> = changes
            .into_iter()
            .map(|c| (c.field, c.from, c.to))
            .collect();
        assert_eq!(
            lines,
            vec![
                ("name".into(), Some("old".into()), Some("new".into())),
                ("odd".into(), None, Some("3".into())),
                ("permissions".into(), None, Some("[\"a.b\"]".into())),
            ]
        );
        assert!(changes_of(&serde_json::json!({})).is_empty());
        assert!(changes_of(&serde_json::Value::Null).is_empty());
    }

    #[test]
    fn days_become_bounds_and_times_pass_through() {
        assert_eq!(
            bound("2026-01-31", false).as_deref(),
            Some("2026-01-31T00:00:00Z")
        );
        assert_eq!(
            bound("2026-01-31", true).as_deref(),
            Some("2026-02-01T00:00:00Z")
        );
        assert_eq!(
            bound("2026-01-31T10:00:00Z", true).as_deref(),
            Some("2026-01-31T10:00:00Z")
        );
        assert_eq!(bound("  ", false), None);
    }

    #[test]
    fn audit_urls_drop_empty_parameters() {
        assert_eq!(audit_url(&[("actor", ""), ("action", "")]), "/admin/audit");
        assert_eq!(
            audit_url(&[("action", "token.create"), ("cursor", "42")]),
            "/admin/audit?action=token.create&cursor=42"
        );
    }
}
