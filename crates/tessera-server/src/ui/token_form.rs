//! The create / edit form of an API token: what was typed (kept when the form comes
//! back with errors), its translation into the API's typed requests, and the
//! resource × action matrix of a custom token.

use std::collections::BTreeSet;

use chrono::{NaiveDate, NaiveTime};
use tessera_api_types::{CreateTokenRequest, ResourceView, TokenView, UpdateTokenRequest};
use tessera_app::AppError;
use tessera_core::validate::FieldErrors;
use tessera_core::{ActionKind, Lifespan, RateLimit, TokenType};

use crate::ui::console::FormData;

/// The duration choices, in the order the form shows them.
pub const DURATIONS: [&str; 5] = ["7d", "30d", "90d", "unlimited", "custom"];
/// The edit form's extra choice: leave the expiry as it is.
pub const KEEP: &str = "keep";

/// The form's fields as text, exactly as typed or as loaded from a token.
#[derive(Debug, Clone, Default)]
pub struct TokenForm {
    pub name: String,
    pub description: String,
    /// One of [`DURATIONS`] or [`KEEP`].
    pub duration: String,
    /// `YYYY-MM-DD`, for a custom duration.
    pub expires_on: String,
    pub token_type: String,
    pub project: String,
    pub rate_requests: String,
    pub rate_seconds: String,
    pub permissions: BTreeSet<String>,
    pub external_id: String,
    /// The metadata object as JSON text; empty for `{}`.
    pub metadata: String,
}

impl TokenForm {
    /// A new token's defaults: 30 days, read-only.
    pub fn blank() -> Self {
        Self {
            duration: "30d".into(),
            token_type: TokenType::ReadOnly.as_str().into(),
            ..Self::default()
        }
    }

    /// The form of an existing token: its expiry is kept unless the editor picks
    /// another duration (a new one is counted from the edit).
    pub fn of(token: &TokenView) -> Result<Self, AppError> {
        Ok(Self {
            name: token.name.clone(),
            description: token.description.clone(),
            duration: KEEP.into(),
            // The last day on which it works: "until D" is stored as the start of D + 1.
            expires_on: token
                .expires_at
                .map(|at| {
                    (at - chrono::Duration::seconds(1))
                        .format("%Y-%m-%d")
                        .to_string()
                })
                .unwrap_or_default(),
            token_type: token.token_type.as_str().into(),
            project: token.project.clone().unwrap_or_default(),
            rate_requests: token
                .rate_limit
                .map(|limit| limit.requests.to_string())
                .unwrap_or_default(),
            rate_seconds: token
                .rate_limit
                .map(|limit| limit.per_seconds.to_string())
                .unwrap_or_default(),
            permissions: token.permissions.iter().cloned().collect(),
            external_id: token.external_id.clone().unwrap_or_default(),
            metadata: if token.metadata.is_empty() {
                String::new()
            } else {
                serde_json::to_string_pretty(&token.metadata).map_err(|error| {
                    // An empty box would clear the metadata on save: refuse instead.
                    AppError::Internal(format!("cannot show a token's metadata: {error}"))
                })?
            },
        })
    }

    /// The form as posted.
    pub fn from_post(form: &FormData) -> Self {
        Self::read(form, "")
    }

    /// The values the edit page showed when it was loaded (its `was_*` fields), so that
    /// a save sends only what the editor changed and composes with edits made
    /// meanwhile by others.
    pub fn loaded_from_post(form: &FormData) -> Self {
        Self::read(form, "was_")
    }

    fn read(form: &FormData, prefix: &str) -> Self {
        let field = |name: &str| form.text(&format!("{prefix}{name}"));
        Self {
            name: field("name"),
            description: field("description"),
            duration: field("duration"),
            expires_on: field("expires_on").trim().to_owned(),
            token_type: field("type"),
            project: field("project"),
            rate_requests: field("rate_requests").trim().to_owned(),
            rate_seconds: field("rate_seconds").trim().to_owned(),
            permissions: form
                .all(&format!("{prefix}permissions"))
                .into_iter()
                .collect(),
            external_id: field("external_id").trim().to_owned(),
            metadata: field("metadata"),
        }
    }

    fn custom(&self) -> bool {
        self.token_type == TokenType::Custom.as_str()
    }

    /// What the form says of the duration: `(lifespan, expires_at)`, both `None` to
    /// keep the current expiry.
    fn expiry(
        &self,
        loaded: &TokenForm,
        errors: &mut FieldErrors,
    ) -> (Option<Lifespan>, Option<chrono::DateTime<chrono::Utc>>) {
        // A date typed in while another duration is chosen: on an edit that keeps the
        // expiry, the new date is the choice; otherwise the two disagree.
        let date_changed = self.expires_on != loaded.expires_on;
        let duration = match self.duration.as_str() {
            KEEP if date_changed && !self.expires_on.is_empty() => "custom",
            "custom" | KEEP => self.duration.as_str(),
            _ if date_changed && !self.expires_on.is_empty() => {
                errors.add(
                    "expires_at",
                    "choose “until a date” to use this date, or clear it",
                );
                return (None, None);
            }
            other => other,
        };
        match duration {
            KEEP => (None, None),
            "custom" => {
                let day = NaiveDate::parse_from_str(&self.expires_on, "%Y-%m-%d");
                // The token works through the whole of the chosen day (UTC), so it
                // expires at the start of the next; the calendar's last day has none.
                match day.map(|day| day.succ_opt()) {
                    Ok(Some(next)) => (
                        Some(Lifespan::Custom),
                        Some(next.and_time(NaiveTime::MIN).and_utc()),
                    ),
                    Ok(None) => {
                        errors.add("expires_at", "must be before the year 10000");
                        (None, None)
                    }
                    Err(_) => {
                        errors.add("expires_at", "choose the day the token expires");
                        (None, None)
                    }
                }
            }
            other => match Lifespan::parse(other) {
                Some(lifespan) => (Some(lifespan), None),
                None => {
                    errors.add("lifespan", "choose a duration");
                    (None, None)
                }
            },
        }
    }

    /// The rate limit typed: none when both boxes are empty.
    fn rate_limit(&self, errors: &mut FieldErrors) -> Option<RateLimit> {
        if self.rate_requests.is_empty() && self.rate_seconds.is_empty() {
            return None;
        }
        let number = |text: &str, field: &str, errors: &mut FieldErrors| {
            text.parse::<u32>().ok().or_else(|| {
                errors.add(field, "must be a whole number");
                None
            })
        };
        let requests = number(&self.rate_requests, "rate_limit.requests", errors);
        let per_seconds = number(&self.rate_seconds, "rate_limit.per_seconds", errors);
        Some(RateLimit {
            requests: requests?,
            per_seconds: per_seconds?,
        })
    }

    /// The metadata typed: `None` when the box is empty (no metadata).
    fn metadata_value(&self, errors: &mut FieldErrors) -> Option<serde_json::Value> {
        if self.metadata.trim().is_empty() {
            return None;
        }
        match serde_json::from_str(&self.metadata) {
            Ok(value) => Some(value),
            Err(_) => {
                errors.add(
                    "metadata",
                    "must be a JSON object, such as {\"plan\": \"pro\"}",
                );
                None
            }
        }
    }

    fn permission_list(&self) -> Vec<String> {
        if self.custom() {
            self.permissions.iter().cloned().collect()
        } else {
            Vec::new()
        }
    }

    /// The create request, or the errors of what could not even be read.
    pub fn create_request(&self) -> Result<CreateTokenRequest, FieldErrors> {
        let mut errors = FieldErrors::default();
        let (lifespan, expires_at) = self.expiry(&Self::default(), &mut errors);
        let rate_limit = self.rate_limit(&mut errors);
        let metadata = self.metadata_value(&mut errors);
        errors.into_result()?;
        Ok(CreateTokenRequest {
            name: self.name.trim().to_owned(),
            description: Some(self.description.trim().to_owned()),
            token_type: TokenType::parse(&self.token_type),
            permissions: Some(self.permission_list()),
            lifespan,
            expires_at,
            project: Some(self.project.clone()).filter(|p| !p.is_empty()),
            rate_limit,
            external_id: Some(self.external_id.clone()).filter(|id| !id.is_empty()),
            metadata,
        })
    }

    /// The edit request: only the fields that differ from what the page showed when
    /// it was loaded (`loaded`), so a save never undoes a change someone else made to
    /// another field meanwhile; the expiry only when a new duration or date was chosen.
    pub fn update_request(&self, loaded: &TokenForm) -> Result<UpdateTokenRequest, FieldErrors> {
        let mut errors = FieldErrors::default();
        let (lifespan, expires_at) = self.expiry(loaded, &mut errors);
        let rate_changed =
            self.rate_requests != loaded.rate_requests || self.rate_seconds != loaded.rate_seconds;
        let rate_limit = if rate_changed {
            Some(self.rate_limit(&mut errors))
        } else {
            None
        };
        let grants_changed = self.token_type != loaded.token_type
            || (self.custom() && self.permissions != loaded.permissions);
        let token_type = if grants_changed {
            let parsed = TokenType::parse(&self.token_type);
            if parsed.is_none() {
                errors.add("type", "choose a token type");
            }
            parsed
        } else {
            None
        };
        let metadata = (self.metadata != loaded.metadata).then(|| self.metadata_value(&mut errors));
        errors.into_result()?;
        let changed = |now: &str, was: &str| (now != was).then(|| now.trim().to_owned());
        Ok(UpdateTokenRequest {
            name: changed(&self.name, &loaded.name),
            description: changed(&self.description, &loaded.description),
            token_type,
            permissions: grants_changed.then(|| self.permission_list()),
            lifespan,
            expires_at: expires_at.map(Some),
            project: (self.project != loaded.project)
                .then(|| Some(self.project.clone()).filter(|p| !p.is_empty())),
            rate_limit,
            external_id: (self.external_id != loaded.external_id)
                .then(|| Some(self.external_id.clone()).filter(|id| !id.is_empty())),
            metadata,
        })
    }
}

/// One checkbox of the matrix.
#[derive(Debug, Clone)]
pub struct MatrixCell {
    /// `resource.action`, the checkbox's value.
    pub permission: String,
    pub action: String,
    pub write: bool,
    pub checked: bool,
}

/// One resource of the matrix: its read actions, then its write actions.
#[derive(Debug, Clone)]
pub struct MatrixRow {
    pub resource: String,
    pub description: String,
    pub cells: Vec<MatrixCell>,
}

/// The resource × action matrix with `checked` ticked.
pub fn matrix(resources: &[ResourceView], checked: &BTreeSet<String>) -> Vec<MatrixRow> {
    resources
        .iter()
        .map(|resource| {
            let mut cells: Vec<MatrixCell> = resource
                .actions
                .iter()
                .map(|action| {
                    let permission = format!("{}.{}", resource.name, action.name);
                    MatrixCell {
                        checked: checked.contains(&permission),
                        permission,
                        action: action.name.clone(),
                        write: action.kind == ActionKind::Write,
                    }
                })
                .collect();
            cells.sort_by_key(|cell| cell.write);
            MatrixRow {
                resource: resource.name.clone(),
                description: resource.description.clone(),
                cells,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posted(body: &str) -> TokenForm {
        TokenForm::from_post(&FormData::parse(body.as_bytes()))
    }

    #[test]
    fn a_custom_form_becomes_a_create_request() {
        let form = posted(
            "name=CI&description=deploys&duration=90d&type=custom&project=shop\
             &rate_requests=10&rate_seconds=60&permissions=article.find&permissions=article.create",
        );
        let request = form.create_request().unwrap();
        assert_eq!(request.name, "CI");
        assert_eq!(request.token_type, Some(TokenType::Custom));
        assert_eq!(request.lifespan, Some(Lifespan::Days90));
        assert_eq!(request.project.as_deref(), Some("shop"));
        assert_eq!(
            request.rate_limit,
            Some(RateLimit {
                requests: 10,
                per_seconds: 60
            })
        );
        assert_eq!(
            request.permissions.unwrap(),
            vec!["article.create", "article.find"]
        );
    }

    #[test]
    fn permissions_of_a_non_custom_type_are_dropped() {
        let request = posted("name=x&duration=7d&type=read-only&permissions=a.b")
            .create_request()
            .unwrap();
        assert_eq!(request.permissions, Some(vec![]));
        assert_eq!(request.project, None);
        assert_eq!(request.rate_limit, None);
    }

    #[test]
    fn a_custom_date_lasts_through_that_day() {
        let request = posted("name=x&duration=custom&expires_on=2031-05-04&type=full-access")
            .create_request()
            .unwrap();
        assert_eq!(request.lifespan, Some(Lifespan::Custom));
        assert_eq!(
            request.expires_at.unwrap().to_rfc3339(),
            "2031-05-05T00:00:00+00:00"
        );
    }

    #[test]
    fn unreadable_fields_are_named() {
        let errors = posted("name=x&duration=custom&expires_on=soon&type=custom&rate_requests=ten")
            .create_request()
            .unwrap_err();
        assert!(errors.get("expires_at").is_some());
        assert!(errors.get("rate_limit.requests").is_some());
        assert!(errors.get("rate_limit.per_seconds").is_some());
        let errors = posted("name=x&duration=forever&type=custom")
            .create_request()
            .unwrap_err();
        assert!(errors.get("lifespan").is_some());
    }

    fn loaded() -> TokenForm {
        posted(
            "name=x&description=d&duration=keep&expires_on=2031-05-04&type=custom\
             &permissions=a.b&rate_requests=10&rate_seconds=60",
        )
    }

    #[test]
    fn an_edit_sends_only_what_changed() {
        let untouched = loaded().update_request(&loaded()).unwrap();
        assert_eq!(
            untouched,
            UpdateTokenRequest::default(),
            "nothing changed, nothing sent"
        );
        let renamed = posted(
            "name=y&description=d&duration=keep&expires_on=2031-05-04&type=custom\
             &permissions=a.b&rate_requests=10&rate_seconds=60",
        )
        .update_request(&loaded())
        .unwrap();
        assert_eq!(
            renamed,
            UpdateTokenRequest {
                name: Some("y".into()),
                ..UpdateTokenRequest::default()
            }
        );
        let regranted = posted(
            "name=x&description=d&duration=keep&expires_on=2031-05-04&type=custom\
             &permissions=a.b&permissions=a.c&rate_requests=&rate_seconds=",
        )
        .update_request(&loaded())
        .unwrap();
        assert_eq!(regranted.token_type, Some(TokenType::Custom));
        assert_eq!(
            regranted.permissions,
            Some(vec!["a.b".into(), "a.c".into()])
        );
        assert_eq!(regranted.rate_limit, Some(None), "cleared");
        assert_eq!(regranted.name, None);
    }

    #[test]
    fn customer_fields_are_read_and_sent_when_changed() {
        let request = posted("name=x&duration=7d&type=read-only&external_id=+cus_1+&metadata=%7B%22plan%22%3A%22pro%22%7D")
            .create_request()
            .unwrap();
        assert_eq!(request.external_id.as_deref(), Some("cus_1"));
        assert_eq!(request.metadata, Some(serde_json::json!({"plan": "pro"})));
        let blank = posted("name=x&duration=7d&type=read-only&external_id=&metadata=")
            .create_request()
            .unwrap();
        assert_eq!((blank.external_id, blank.metadata), (None, None));
        let errors = posted("name=x&duration=7d&type=read-only&metadata=%7Bplan")
            .create_request()
            .unwrap_err();
        assert!(errors.get("metadata").is_some());

        let was = posted("name=x&duration=keep&type=read-only&external_id=cus_1&metadata=%7B%7D");
        let cleared = posted("name=x&duration=keep&type=read-only&external_id=&metadata=")
            .update_request(&was)
            .unwrap();
        assert_eq!(cleared.external_id, Some(None));
        assert_eq!(cleared.metadata, Some(None));
        assert_eq!(
            was.update_request(&was).unwrap(),
            UpdateTokenRequest::default()
        );
    }

    #[test]
    fn an_edit_keeps_the_expiry_unless_a_duration_or_date_is_chosen() {
        let renewed =
            posted("name=x&duration=30d&expires_on=2031-05-04&type=custom&permissions=a.b")
                .update_request(&loaded())
                .unwrap();
        assert_eq!(renewed.lifespan, Some(Lifespan::Days30));
        let redated =
            posted("name=x&duration=keep&expires_on=2032-01-31&type=custom&permissions=a.b")
                .update_request(&loaded())
                .unwrap();
        assert_eq!(redated.lifespan, Some(Lifespan::Custom));
        assert_eq!(
            redated.expires_at.flatten().unwrap().to_rfc3339(),
            "2032-02-01T00:00:00+00:00"
        );
        let conflicting = posted("name=x&duration=7d&expires_on=2032-01-31&type=custom")
            .update_request(&loaded())
            .unwrap_err();
        assert!(conflicting.get("expires_at").is_some());
        let created = posted("name=x&duration=30d&expires_on=2032-01-31&type=read-only")
            .create_request()
            .unwrap_err();
        assert!(
            created.get("expires_at").is_some(),
            "a date needs “until a date”"
        );
    }

    /// "Until a date" means "through that day": the calendar's last day has no next
    /// day, and used to panic computing it (found by the `request_bodies` fuzz target).
    #[test]
    fn the_calendars_last_day_is_refused_not_a_panic() {
        let last = NaiveDate::MAX.format("%Y-%m-%d").to_string();
        assert_eq!(
            NaiveDate::parse_from_str(&last, "%Y-%m-%d"),
            Ok(NaiveDate::MAX)
        );
        // A browser sends the year's sign percent-encoded (a bare `+` means a space).
        let form = format!(
            "name=x&duration=custom&expires_on={}&type=read-only",
            last.replace('+', "%2B")
        );
        let errors = posted(&form).create_request().unwrap_err();
        assert!(errors.get("expires_at").is_some());
    }

    #[test]
    fn the_edit_form_shows_the_last_day_a_token_works() {
        let token = TokenView {
            expires_at: Some("2031-05-05T00:00:00Z".parse().unwrap()),
            ..sample_view()
        };
        assert_eq!(TokenForm::of(&token).unwrap().expires_on, "2031-05-04");
    }

    fn sample_view() -> TokenView {
        let now = chrono::Utc::now();
        TokenView {
            id: uuid::Uuid::nil(),
            kind: tessera_core::TokenKind::Api,
            name: "x".into(),
            description: String::new(),
            token_type: TokenType::ReadOnly,
            permissions: vec![],
            project: None,
            owner_id: None,
            status: tessera_core::TokenStatus::Active,
            expired: false,
            lifespan: Lifespan::Custom,
            expires_at: None,
            api_version: "v1".into(),
            hint: "tsr_abcd".into(),
            created_at: now,
            created_by: "test".into(),
            updated_at: now,
            last_used_at: None,
            rate_limit: None,
            external_id: None,
            metadata: tessera_core::TokenMetadata::new(),
        }
    }
}
