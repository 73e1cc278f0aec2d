//! JSON request bodies of the management API and verify.
//!
//! Input: the first byte picks the request type (`byte % 16`, table below), the rest is
//! the body. The body goes through the server's own parser (`extract::parse_json`, an
//! empty body reading as `{}`), then, when it parses, through the validations the app
//! applies to that request (core's `validate::*`, `TokenType::checked_permissions`
//! against a small catalog, `resolve_expiry`, rate limits, metadata, external ids,
//! emails, passwords, role and resource names, API-version upgrades). Checked:
//! - nothing panics;
//! - a refused body answers 400 (not JSON) or 422 naming at least one field, and no
//!   error body (message, detail keys, detail values) repeats the secret part of a
//!   token-shaped word of the input;
//! - what validation accepts holds its invariants (permissions sorted, unique and in
//!   the catalog; a custom expiry in the future and before the year 10000; metadata
//!   within 4 KB with no NUL);
//! - an accepted body serializes and parses back to the same request;
//! - `POST /v1/verify`'s borrowing fast path accepts exactly what the general parser
//!   accepts, with the same values.

#![no_main]

use std::fmt::Debug;

use chrono::{DateTime, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_api_types::ErrorCode;
use tessera_api_types::{
    CreatePersonalTokenRequest, CreateTokenRequest, CreateUserRequest, DuplicateRequest,
    LoginRequest, ProjectRequest, RegenerateRequest, RegisterFirstRequest, ResourceRequest,
    ResourceUpdate, RoleRequest, RoleUpdate, UpdateTokenRequest, UpdateUserRequest,
    UpgradeVersionRequest, VerifyRequest,
};
use tessera_app::AppError;
use tessera_core::admin::validate_role_name;
use tessera_core::lifecycle::resolve_expiry;
use tessera_core::validate::{self, FieldErrors};
use tessera_core::{
    Action, ActionKind, ApiVersions, Catalog, Lifespan, RateLimit, Resource, TokenFormat, TokenType,
};
use tessera_fuzz::assert_error_body_keeps_secrets;
use tessera_server::error::ApiError;
use tessera_server::extract::parse_json;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

fn catalog() -> Catalog {
    let action = |name: &str, kind| Action {
        name: name.to_owned(),
        kind,
    };
    Catalog::new(&[
        Resource {
            name: "article".into(),
            description: String::new(),
            actions: vec![
                action("find", ActionKind::Read),
                action("findOne", ActionKind::Read),
                action("create", ActionKind::Write),
                action("delete", ActionKind::Write),
            ],
        },
        Resource {
            name: "comment".into(),
            description: String::new(),
            actions: vec![
                action("read", ActionKind::Read),
                action("write", ActionKind::Write),
            ],
        },
    ])
}

/// A refused body: 400 or 422 naming a field; no secret repeated.
fn check_error(input: &[&str], error: &ApiError) {
    match error.code() {
        ErrorCode::BadRequest => {}
        ErrorCode::ValidationFailed => {
            assert!(
                !error.details().is_empty(),
                "a 422 names a field: {error:?}"
            );
        }
        other => panic!("a body is refused with 400 or 422, not {other:?}"),
    }
    assert_error_body_keeps_secrets(input, error.message(), error.details());
}

/// Validation errors as the server answers them.
fn check_validation(input: &[&str], errors: FieldErrors) {
    if errors.is_empty() {
        return;
    }
    let error = ApiError::from(AppError::from(errors));
    assert_eq!(error.code(), ErrorCode::ValidationFailed);
    check_error(input, &error);
}

fn parse<T: DeserializeOwned>(input: &[&str], body: &[u8]) -> Option<T> {
    match parse_json::<T>(body) {
        Ok(value) => Some(value),
        Err(error) => {
            check_error(input, &error);
            None
        }
    }
}

/// Parses, checks the round trip, and hands the request to `validate`.
fn request<T>(input: &[&str], body: &[u8], validate: impl FnOnce(&T) -> FieldErrors)
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let Some(value) = parse::<T>(input, body) else {
        return;
    };
    round_trip(&value, |a, b| a == b);
    check_validation(input, validate(&value));
}

fn round_trip<T>(value: &T, same: impl Fn(&T, &T) -> bool)
where
    T: DeserializeOwned + Serialize + Debug,
{
    let Ok(bytes) = serde_json::to_vec(value) else {
        panic!("a parsed request serializes: {value:?}");
    };
    match parse_json::<T>(&bytes) {
        Ok(again) => assert!(
            same(value, &again),
            "round trip changed {value:?} into {again:?}"
        ),
        Err(error) => panic!(
            "{value:?} serialized as {} does not parse back: {error:?}",
            String::from_utf8_lossy(&bytes)
        ),
    }
}

fn checked_permissions(
    token_type: TokenType,
    permissions: &[String],
    catalog: &Catalog,
    errors: &mut FieldErrors,
) {
    if let Some(checked) = errors.collect(token_type.checked_permissions(permissions, catalog)) {
        assert!(
            checked.windows(2).all(|pair| pair[0] < pair[1]),
            "{checked:?}"
        );
        assert!(
            checked.iter().all(|p| catalog.kind_of(p).is_some()),
            "{checked:?}"
        );
        assert!(checked.iter().all(|p| permissions.contains(p)));
        assert!(token_type == TokenType::Custom || checked.is_empty());
    }
}

fn expiry(lifespan: Option<Lifespan>, expires_at: Option<DateTime<Utc>>, errors: &mut FieldErrors) {
    let now = now();
    if let Some((lifespan, at)) = errors.collect(resolve_expiry(lifespan, expires_at, now)) {
        match lifespan {
            Lifespan::Unlimited => assert_eq!(at, None),
            Lifespan::Custom => {
                let at = at.unwrap_or_default();
                assert!(at > now && at.format("%Y").to_string().len() == 4, "{at}");
            }
            _ => assert!(at.is_some_and(|at| at > now)),
        }
    }
}

fn metadata(value: Option<serde_json::Value>, errors: &mut FieldErrors) {
    if let Some(object) = errors.collect(validate::metadata(value.unwrap_or_default())) {
        let size = serde_json::to_vec(&object).map_or(usize::MAX, |b| b.len());
        assert!(size <= validate::METADATA_MAX_BYTES, "{size}");
        assert!(
            !serde_json::Value::Object(object)
                .to_string()
                .contains("\\u0000")
        );
    }
}

fn rate_limit(limit: RateLimit, errors: &mut FieldErrors) {
    if let Some(limit) = errors.collect(limit.validate()) {
        assert!((1..=RateLimit::MAX_REQUESTS).contains(&limit.requests));
        assert!((1..=RateLimit::MAX_PER_SECONDS).contains(&limit.per_seconds));
    }
}

fn project(slug: &str, errors: &mut FieldErrors) {
    if validate::project_slug(slug).is_err() {
        errors.add("project", "must match [a-z0-9][a-z0-9-]{0,62}");
    }
}

/// Requests whose metadata may hold floats, which serde_json does not promise to
/// round-trip to the last bit: compared without it.
fn without_metadata_create(a: &CreateTokenRequest) -> CreateTokenRequest {
    CreateTokenRequest {
        metadata: None,
        ..a.clone()
    }
}

fn without_metadata_update(a: &UpdateTokenRequest) -> UpdateTokenRequest {
    UpdateTokenRequest {
        metadata: None,
        ..a.clone()
    }
}

fn create_token(input: &[&str], body: &[u8]) {
    let Some(request) = parse::<CreateTokenRequest>(input, body) else {
        return;
    };
    round_trip(&request, |a, b| {
        without_metadata_create(a) == without_metadata_create(b)
    });
    let catalog = catalog();
    let mut errors = FieldErrors::default();
    errors.collect(validate::display_name("name", &request.name));
    errors.collect(validate::description(
        request.description.as_deref().unwrap_or_default(),
    ));
    match request.token_type {
        Some(token_type) => checked_permissions(
            token_type,
            request.permissions.as_deref().unwrap_or_default(),
            &catalog,
            &mut errors,
        ),
        None => errors.add("type", "must be one of read-only, full-access, custom"),
    }
    expiry(request.lifespan, request.expires_at, &mut errors);
    if let Some(limit) = request.rate_limit {
        rate_limit(limit, &mut errors);
    }
    if let Some(id) = &request.external_id {
        errors.collect(validate::external_id(id));
    }
    metadata(request.metadata.clone(), &mut errors);
    if let Some(slug) = &request.project {
        project(slug, &mut errors);
    }
    check_validation(input, errors);
}

fn update_token(input: &[&str], body: &[u8]) {
    let Some(request) = parse::<UpdateTokenRequest>(input, body) else {
        return;
    };
    round_trip(&request, |a, b| {
        without_metadata_update(a) == without_metadata_update(b)
    });
    let catalog = catalog();
    let mut errors = FieldErrors::default();
    if let Some(name) = &request.name {
        errors.collect(validate::display_name("name", name));
    }
    if let Some(description) = &request.description {
        errors.collect(validate::description(description));
    }
    if request.token_type.is_some() || request.permissions.is_some() {
        // As the app does, against a custom token that holds `article.find`.
        let token_type = request.token_type.unwrap_or(TokenType::Custom);
        let permissions = match (&request.permissions, token_type) {
            (Some(list), _) => list.clone(),
            (None, TokenType::Custom) => vec!["article.find".to_owned()],
            (None, _) => Vec::new(),
        };
        checked_permissions(token_type, &permissions, &catalog, &mut errors);
    }
    match (request.lifespan, request.expires_at) {
        (None, None) | (None, Some(None)) => {}
        (lifespan, expires_at) => expiry(lifespan, expires_at.flatten(), &mut errors),
    }
    if let Some(Some(slug)) = &request.project {
        project(slug, &mut errors);
    }
    if let Some(Some(limit)) = request.rate_limit {
        rate_limit(limit, &mut errors);
    }
    if let Some(Some(id)) = &request.external_id {
        errors.collect(validate::external_id(id));
    }
    if let Some(value) = &request.metadata {
        metadata(value.clone(), &mut errors);
    }
    check_validation(input, errors);
}

fn verify(input: &[&str], body: &[u8]) {
    let general = parse::<VerifyRequest>(input, body);
    match tessera_server::parse_verify_body(body) {
        Ok(fast) => {
            let Some(general) = general else {
                panic!("the fast path accepts what the general parser refuses");
            };
            assert_eq!(fast.token, general.token);
            assert_eq!(fast.permission.as_deref(), general.permission.as_deref());
            assert_eq!(fast.project.as_deref(), general.project.as_deref());
            // What the verifier does first.
            if let Ok(parsed) = TokenFormat::default().parse(&fast.token) {
                assert_eq!(parsed.secret.expose(), fast.token);
            }
            if let Some(permission) = &fast.permission {
                let _ = tessera_core::Permission::parse(permission);
            }
        }
        Err(error) => {
            assert!(
                general.is_none(),
                "the general parser accepts what verify refuses"
            );
            check_error(input, &error);
        }
    }
}

fn login(input: &[&str], body: &[u8]) {
    let Some(request) = parse::<LoginRequest>(input, body) else {
        return;
    };
    let mut errors = FieldErrors::default();
    errors.collect(validate::single_line("email", &request.email));
    check_validation(input, errors);
}

fn user_fields(
    email: Option<&str>,
    name: Option<&str>,
    role: Option<&str>,
    password: Option<&str>,
) -> FieldErrors {
    let mut errors = FieldErrors::default();
    if let Some(email) = email {
        errors.collect(validate::email(email));
    }
    if let Some(name) = name.or(email) {
        errors.collect(validate::display_name("name", name));
    }
    if let Some(role) = role
        && validate_role_name(role).is_err()
    {
        errors.add("role", "names no role; see the role list");
    }
    if let Some(password) = password {
        errors.collect(validate::password(password));
    }
    errors
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let text = tessera_fuzz::text(body);
    let decoded = tessera_fuzz::json_strings(body);
    let input: &[&str] = &[&text, &decoded];
    match selector % 16 {
        0 => create_token(input, body),
        1 => update_token(input, body),
        2 => request(input, body, |r: &RegenerateRequest| {
            let mut errors = FieldErrors::default();
            errors.collect(tessera_core::GracePeriod::from_request(r.grace_period_seconds));
            errors
        }),
        3 => request(input, body, |r: &DuplicateRequest| {
            let mut errors = FieldErrors::default();
            if let Some(name) = &r.name {
                errors.collect(validate::display_name("name", name));
            }
            errors
        }),
        4 => request(input, body, |r: &UpgradeVersionRequest| {
            let versions = ApiVersions::new(vec!["v1".into(), "v2".into(), "2026-01".into()])
                .unwrap_or_default();
            let mut errors = FieldErrors::default();
            if let Some(version) = errors.collect(versions.upgrade("v1", r.api_version.as_deref()))
            {
                assert!(versions.all().contains(&version) && version != "v1");
            }
            errors
        }),
        5 => request(input, body, |r: &CreatePersonalTokenRequest| {
            let mut errors = FieldErrors::default();
            errors.collect(validate::display_name("name", &r.name));
            errors.collect(validate::description(
                r.description.as_deref().unwrap_or_default(),
            ));
            expiry(r.lifespan, r.expires_at, &mut errors);
            errors
        }),
        6 => request(input, body, |r: &CreateUserRequest| {
            user_fields(
                Some(&r.email),
                r.name.as_deref(),
                Some(&r.role),
                r.password.as_deref(),
            )
        }),
        7 => request(input, body, |r: &UpdateUserRequest| {
            user_fields(
                r.email.as_deref(),
                r.name.as_deref(),
                r.role.as_deref(),
                r.password.as_deref(),
            )
        }),
        8 => request(input, body, |r: &RegisterFirstRequest| {
            user_fields(Some(&r.email), r.name.as_deref(), None, Some(&r.password))
        }),
        9 => login(input, body),
        10 => request(input, body, |r: &RoleRequest| {
            let mut errors = FieldErrors::default();
            errors.collect(validate_role_name(&r.name));
            errors.collect(validate::description(
                r.description.as_deref().unwrap_or_default(),
            ));
            errors
        }),
        11 => request(input, body, |r: &RoleUpdate| {
            let mut errors = FieldErrors::default();
            errors.collect(validate::description(
                r.description.as_deref().unwrap_or_default(),
            ));
            errors
        }),
        12 => request(input, body, |r: &ResourceRequest| {
            let resource = r.clone().into_resource();
            let result = resource.validate();
            if result.is_ok() {
                let catalog = Catalog::new([&resource]);
                for permission in resource.permissions() {
                    assert!(
                        tessera_core::Permission::parse(&permission).is_some(),
                        "{permission}"
                    );
                    assert!(catalog.kind_of(&permission).is_some());
                }
            }
            result.err().unwrap_or_default()
        }),
        13 => request(input, body, |r: &ResourceUpdate| {
            let mut resource = Resource {
                name: "article".into(),
                description: String::new(),
                actions: vec![Action {
                    name: "find".into(),
                    kind: ActionKind::Read,
                }],
            };
            if let Some(description) = &r.description {
                resource.description = description.clone();
            }
            if let Some(actions) = &r.actions {
                resource.actions = actions
                    .iter()
                    .map(|a| Action {
                        name: a.name.clone(),
                        kind: a.kind,
                    })
                    .collect();
            }
            resource.validate().err().unwrap_or_default()
        }),
        14 => request(input, body, |r: &ProjectRequest| {
            let mut errors = FieldErrors::default();
            errors.collect(validate::project_slug(&r.slug));
            errors.collect(validate::display_name("name", &r.name));
            errors
        }),
        _ => verify(input, body),
    }
});
