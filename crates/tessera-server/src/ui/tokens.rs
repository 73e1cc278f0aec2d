//! Settings › API tokens: the table with its filters, the create and edit pages, the
//! secret shown once after create / regenerate / duplicate, and the per-token actions.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tessera_api_types::{
    CreatedToken, DuplicateRequest, ProjectView, RegenerateRequest, TokenListParams, TokenView,
    UpgradeVersionRequest,
};
use tessera_app::AppError;
use tessera_core::validate::FieldErrors;
use tessera_core::{ApiVersions, TokenStatus, UsageDays};

use crate::AppState;
use crate::extract::Path;
use crate::ui::chart::UsageChart;
use crate::ui::console::{Console, ConsoleForm, UiResult, non_blank, safe_next};
use crate::ui::page::{
    Badge, Layout, ShownOnce, Time, notice, render, render_with, secret_or_fallback,
};
use crate::ui::token_form::{DURATIONS, KEEP, MatrixRow, TokenForm, matrix};

/// The table's query string: the API's filters, plus what a redirect tells the page.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    created: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    cursor: String,
    /// What the previous action did (`deleted`), for the notice.
    #[serde(default)]
    done: String,
}

/// `/admin/tokens?…` with the non-empty parameters of `pairs`.
fn list_url(pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs.iter().filter(|(_, value)| !value.is_empty()) {
        query.append_pair(key, value);
    }
    let query = query.finish();
    if query.is_empty() {
        "/admin/tokens".to_owned()
    } else {
        format!("/admin/tokens?{query}")
    }
}

/// `target` with `done=<what>` (replacing an earlier one, dropping a `confirm`).
fn with_done(target: &str, done: &str) -> String {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key != "done" && key != "confirm" {
            out.append_pair(&key, &value);
        }
    }
    out.append_pair("done", done);
    format!("{path}?{}", out.finish())
}

/// One row of the table.
#[derive(Debug)]
struct TokenRow {
    id: String,
    name: String,
    description: String,
    type_key: String,
    project: Option<String>,
    created: Time,
    last_used: Option<Time>,
    expires: Option<Time>,
    badge: Badge,
    enabled: bool,
    upgradable: bool,
}

impl TokenRow {
    fn new(token: &TokenView, versions: &ApiVersions, now: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            id: token.id.to_string(),
            name: token.name.clone(),
            description: token.description.clone(),
            type_key: format!("type.{}", token.token_type.as_str()),
            project: token.project.clone(),
            created: Time::new(token.created_at),
            last_used: Time::maybe(token.last_used_at),
            expires: Time::maybe(token.expires_at),
            badge: Badge::of(token, now),
            enabled: token.status == TokenStatus::Active,
            upgradable: versions.upgrade(&token.api_version, None).is_ok(),
        }
    }
}

/// The number of matching tokens as the page shows it: past the list's count limit
/// the count is a floor, shown as "10000+".
fn count_label(total: u64, exact: bool) -> String {
    if exact {
        total.to_string()
    } else {
        format!("{total}+")
    }
}

#[derive(Debug, Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    layout: Layout,
    rows: Vec<TokenRow>,
    /// How many match: "12", or "10000+" past the list's count limit.
    count: String,
    q: String,
    created: String,
    status: String,
    sort: String,
    filtered: bool,
    next_url: Option<String>,
    first_url: Option<String>,
    notice: Option<String>,
}

impl TokensPage {
    fn filters(&self) -> [(&'static str, &str); 4] {
        [
            ("q", &self.q),
            ("created", &self.created),
            ("status", &self.status),
            ("sort", &self.sort),
        ]
    }

    /// The link a column header sorts by: ascending first, then toggling.
    fn sort_url(&self, field: &str) -> String {
        let descending = format!("-{field}");
        let next = if self.sort == field {
            descending.as_str()
        } else {
            field
        };
        let mut pairs = self.filters();
        pairs[3] = ("sort", next);
        list_url(&pairs)
    }

    /// `aria-sort` of a column.
    fn sort_state(&self, field: &str) -> &'static str {
        let current = if self.sort.is_empty() {
            "-created_at"
        } else {
            self.sort.as_str()
        };
        if current == field {
            "ascending"
        } else if current.strip_prefix('-') == Some(field) {
            "descending"
        } else {
            "none"
        }
    }

    /// Where a row's actions come back to: this very view.
    fn back(&self) -> &str {
        &self.layout.here
    }
}

/// `GET /admin/tokens`.
pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<ListQuery>,
) -> UiResult {
    let params = TokenListParams {
        q: non_blank(&query.q),
        created: non_blank(&query.created),
        status: non_blank(&query.status),
        sort: non_blank(&query.sort),
        cursor: non_blank(&query.cursor),
        ..TokenListParams::default()
    };
    let filter = params
        .parse()
        .map_err(|errors| console.fail()(errors.into()))?;
    let page = state
        .app
        .tokens()
        .list(&console.principal, filter)
        .await
        .map_err(console.fail())?;
    let versions = &state.app.settings().api_versions;
    let now = state.app.now();
    let mut view = TokensPage {
        layout: Layout::console(&console, "tokens", "tokens.title"),
        rows: page
            .items
            .iter()
            .map(|token| TokenRow::new(token, versions, now))
            .collect(),
        count: count_label(page.total, page.total_exact),
        filtered: !(query.q.is_empty()
            && query.created.is_empty()
            && query.status.is_empty()
            && query.cursor.is_empty()),
        q: query.q,
        created: query.created,
        status: query.status,
        sort: query.sort,
        next_url: None,
        first_url: None,
        notice: notice(console.lang, "tokens", &query.done),
    };
    let mut pairs = view.filters().map(|(k, v)| (k, v.to_owned())).to_vec();
    if let Some(cursor) = page.next_cursor {
        pairs.push(("cursor", cursor));
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        view.next_url = Some(list_url(&borrowed));
        pairs.pop();
    }
    if !query.cursor.is_empty() {
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        view.first_url = Some(list_url(&borrowed));
    }
    Ok(render(&view))
}

/// The create / edit page.
#[derive(Debug, Template)]
#[template(path = "token.html")]
struct TokenPage {
    layout: Layout,
    /// The token being edited; `None` on the create page.
    token: Option<TokenDetail>,
    form: TokenForm,
    /// What the edit page showed when loaded, sent back as `was_*` fields.
    loaded: Option<TokenForm>,
    errors: FieldErrors,
    matrix: Vec<MatrixRow>,
    projects: Vec<ProjectView>,
    /// The secret, on the one page that reveals it.
    secret: Option<ShownOnce>,
    notice: Option<String>,
    usage: Option<UsageChart>,
    /// A dialog to open at once (`regenerate`, `delete`), from a table menu.
    confirm: String,
    durations: [&'static str; 5],
    keep: &'static str,
}

/// What the edit page shows of a token beside the form.
#[derive(Debug)]
struct TokenDetail {
    id: String,
    name: String,
    hint: String,
    badge: Badge,
    enabled: bool,
    api_version: String,
    upgradable: bool,
    type_key: String,
    created: Time,
    created_by: String,
    last_used: Option<Time>,
    expires: Option<Time>,
}

impl TokenPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field)
    }

    /// The first error about the permission list (`permissions`, `permissions[3]`).
    fn permissions_error(&self) -> Option<&str> {
        self.errors
            .iter()
            .find(|(field, _)| field.starts_with("permissions"))
            .map(|(_, message)| message)
    }

    fn can_edit(&self) -> bool {
        let needed = if self.token.is_some() {
            "tokens.update"
        } else {
            "tokens.create"
        };
        self.layout.has(needed)
    }

    fn action(&self) -> String {
        match &self.token {
            Some(token) => format!("/admin/tokens/{}", token.id),
            None => "/admin/tokens".to_owned(),
        }
    }
}

/// Builds the create or edit page around `form`.
async fn token_page(
    state: &AppState,
    console: &Console,
    token: Option<&TokenView>,
    form: TokenForm,
    errors: FieldErrors,
) -> UiResult<TokenPage> {
    let app = &state.app;
    let resources = app
        .catalog()
        .list_resources(&console.principal)
        .await
        .map_err(console.fail())?;
    let projects = app
        .catalog()
        .list_projects(&console.principal)
        .await
        .map_err(console.fail())?;
    let now = app.now();
    let versions = &app.settings().api_versions;
    let (title, detail) = match token {
        Some(token) => (
            "token.edit_title",
            Some(TokenDetail {
                id: token.id.to_string(),
                name: token.name.clone(),
                hint: token.hint.clone(),
                badge: Badge::of(token, now),
                enabled: token.status == TokenStatus::Active,
                api_version: token.api_version.clone(),
                upgradable: versions.upgrade(&token.api_version, None).is_ok(),
                type_key: format!("type.{}", token.token_type.as_str()),
                created: Time::new(token.created_at),
                created_by: token.created_by.clone(),
                last_used: Time::maybe(token.last_used_at),
                expires: Time::maybe(token.expires_at),
            }),
        ),
        None => ("token.create_title", None),
    };
    let mut layout = Layout::console(console, "tokens", title);
    if let Some(detail) = &detail {
        layout.title = detail.name.clone();
    }
    Ok(TokenPage {
        layout,
        token: detail,
        matrix: matrix(&resources, &form.permissions),
        loaded: token
            .map(TokenForm::of)
            .transpose()
            .map_err(console.fail())?,
        form,
        errors,
        projects,
        secret: None,
        notice: None,
        usage: None,
        confirm: String::new(),
        durations: DURATIONS,
        keep: KEEP,
    })
}

/// `GET /admin/tokens/new`.
pub async fn new(State(state): State<AppState>, console: Console) -> UiResult {
    let page = token_page(
        &state,
        &console,
        None,
        TokenForm::blank(),
        FieldErrors::default(),
    )
    .await?;
    Ok(render(&page))
}

/// The page that reveals a new secret, once. Its URL is replaced by the token's own
/// (so a reload or a return through history loads the page without it), and like
/// every page it is `Cache-Control: no-store`. Should the rest of the page fail to
/// build, the secret is shown alone.
async fn secret_page(state: &AppState, console: &Console, created: CreatedToken) -> UiResult {
    let token = created.record;
    let url = format!("/admin/tokens/{}", token.id);
    let secret = ShownOnce(created.token);
    let page = token_page(
        state,
        console,
        Some(&token),
        TokenForm::of(&token).map_err(console.fail())?,
        FieldErrors::default(),
    )
    .await
    .map(|mut page| {
        page.layout = page.layout.clone().with_replace_url(url.clone());
        page.secret = Some(secret.clone());
        page
    });
    Ok(secret_or_fallback(page, console, secret, url))
}

/// A form that came back with errors: shown again with what was typed (and, on an
/// edit, with what the page showed when it was first loaded), under the URL of the
/// page the form came from.
async fn invalid_form(
    state: &AppState,
    console: &Console,
    token: Option<&TokenView>,
    form: TokenForm,
    loaded: Option<TokenForm>,
    errors: FieldErrors,
) -> UiResult {
    let mut page = token_page(state, console, token, form, errors).await?;
    let url = match token {
        Some(token) => format!("/admin/tokens/{}", token.id),
        None => "/admin/tokens/new".to_owned(),
    };
    page.layout = page.layout.clone().with_replace_url(url);
    if loaded.is_some() {
        page.loaded = loaded;
    }
    Ok(render_with(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

/// `POST /admin/tokens`.
pub async fn create(State(state): State<AppState>, posted: ConsoleForm) -> UiResult {
    let ConsoleForm { console, form } = posted;
    let form = TokenForm::from_post(&form);
    let request = match form.create_request() {
        Ok(request) => request,
        Err(errors) => return invalid_form(&state, &console, None, form, None, errors).await,
    };
    match state.app.tokens().create(&console.principal, request).await {
        Ok(created) => secret_page(&state, &console, created).await,
        Err(AppError::Validation(errors)) => {
            invalid_form(&state, &console, None, form, None, errors.0).await
        }
        Err(AppError::Conflict(message)) => {
            let errors = FieldErrors::single("name", message);
            invalid_form(&state, &console, None, form, None, errors).await
        }
        Err(error) => Err(console.fail()(error)),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    #[serde(default)]
    days: Option<String>,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    done: String,
}

/// `GET /admin/tokens/{id}`: the edit page with the usage chart.
pub async fn show(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> UiResult {
    let token = state
        .app
        .tokens()
        .get(&console.principal, &id)
        .await
        .map_err(console.fail())?;
    let mut page = token_page(
        &state,
        &console,
        Some(&token),
        TokenForm::of(&token).map_err(console.fail())?,
        FieldErrors::default(),
    )
    .await?;
    let days = match query.days.as_deref() {
        None | Some("") => 30,
        Some("7") => 7,
        Some("30") => 30,
        Some("90") => 90,
        Some(_) => {
            return Err(console.fail()(AppError::field(
                "days",
                "the usage chart shows 7, 30 or 90 days",
            )));
        }
    };
    let usage = state
        .app
        .tokens()
        .usage(
            &console.principal,
            &id,
            UsageDays::new(days).ok_or_else(|| {
                console.fail()(AppError::Internal(format!(
                    "the usage chart's span of {days} days is not a valid span"
                )))
            })?,
        )
        .await
        .map_err(console.fail())?;
    page.usage = Some(UsageChart::new(&usage, days, console.lang, &id));
    page.confirm = match query.confirm.as_str() {
        "regenerate" | "delete" => query.confirm,
        _ => String::new(),
    };
    page.notice = notice(console.lang, "tokens", &query.done);
    Ok(render(&page))
}

/// `POST /admin/tokens/{id}`: saves the edit form.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: ConsoleForm,
) -> UiResult {
    let ConsoleForm {
        console,
        form: posted,
    } = posted;
    let form = TokenForm::from_post(&posted);
    let loaded = TokenForm::loaded_from_post(&posted);
    let token = state
        .app
        .tokens()
        .get(&console.principal, &id)
        .await
        .map_err(console.fail())?;
    let request = match form.update_request(&loaded) {
        Ok(request) => request,
        Err(errors) => {
            return invalid_form(
                &state,
                &console,
                Some(&token),
                form,
                Some(loaded.clone()),
                errors,
            )
            .await;
        }
    };
    match state
        .app
        .tokens()
        .update(&console.principal, &id, request)
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/admin/tokens/{id}?done=saved")).into_response()),
        Err(AppError::Validation(errors)) => {
            invalid_form(
                &state,
                &console,
                Some(&token),
                form,
                Some(loaded.clone()),
                errors.0,
            )
            .await
        }
        Err(AppError::Conflict(message)) => {
            let errors = FieldErrors::single("name", message);
            invalid_form(
                &state,
                &console,
                Some(&token),
                form,
                Some(loaded.clone()),
                errors,
            )
            .await
        }
        Err(error) => Err(console.fail()(error)),
    }
}

/// `POST /admin/tokens/{id}/{action}`: the per-token menu.
pub async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    posted: ConsoleForm,
) -> UiResult<Response> {
    let ConsoleForm { console, form } = posted;
    let app = &state.app;
    let principal = &console.principal;
    let back =
        |done: &str| Redirect::to(&with_done(&safe_next(form.get("back")), done)).into_response();
    let fail = console.fail();
    match action.as_str() {
        "regenerate" => {
            // Absent means none; anything unreadable is refused, never taken as 0
            // (which would revoke the old secret at once).
            let grace = match form.get("grace_period_seconds") {
                None | Some("") => None,
                Some(text) => match text.parse::<u32>() {
                    Ok(seconds) => Some(seconds),
                    Err(_) => {
                        return Err(fail(AppError::field(
                            "grace_period_seconds",
                            "must be a whole number of seconds",
                        )));
                    }
                },
            };
            let request = RegenerateRequest {
                grace_period_seconds: grace,
            };
            let created = app
                .tokens()
                .regenerate(principal, &id, request)
                .await
                .map_err(fail)?;
            secret_page(&state, &console, created).await
        }
        "duplicate" => {
            let created = app
                .tokens()
                .duplicate(principal, &id, DuplicateRequest::default())
                .await
                .map_err(fail)?;
            secret_page(&state, &console, created).await
        }
        "disable" | "enable" => {
            let status = if action == "disable" {
                TokenStatus::Disabled
            } else {
                TokenStatus::Active
            };
            app.tokens()
                .set_status(principal, &id, status)
                .await
                .map_err(fail)?;
            Ok(back(&format!("{action}d")))
        }
        "upgrade" => {
            app.tokens()
                .upgrade_version(principal, &id, UpgradeVersionRequest::default())
                .await
                .map_err(fail)?;
            Ok(back("upgraded"))
        }
        "delete" => {
            app.tokens().delete(principal, &id).await.map_err(fail)?;
            Ok(Redirect::to("/admin/tokens?done=deleted").into_response())
        }
        _ => Err(fail(AppError::NotFound(format!("token action `{action}`")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_replaces_an_earlier_one_and_keeps_the_filters() {
        assert_eq!(
            with_done("/admin/tokens", "disabled"),
            "/admin/tokens?done=disabled"
        );
        assert_eq!(
            with_done("/admin/tokens?q=ci&done=enabled&confirm=delete", "disabled"),
            "/admin/tokens?q=ci&done=disabled"
        );
    }

    #[test]
    fn list_urls_drop_empty_parameters() {
        assert_eq!(list_url(&[("q", ""), ("status", "")]), "/admin/tokens");
        assert_eq!(
            list_url(&[("q", "a b"), ("created", ""), ("status", "active")]),
            "/admin/tokens?q=a+b&status=active"
        );
    }

    #[test]
    fn a_count_past_the_limit_reads_as_at_least() {
        assert_eq!(count_label(12, true), "12");
        assert_eq!(count_label(10_000, true), "10000");
        assert_eq!(count_label(10_000, false), "10000+");
    }
}
