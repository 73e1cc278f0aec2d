//! `/v1/auth`: sign in, sign out, who am I.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json as AxumJson, Router};
use tessera_api_types::{ErrorCode, LoginRequest, RegisterFirstRequest, UserView};
use tessera_app::AppError;
use tessera_app::auth::Password;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, ClientAddress, Json, SESSION_COOKIE};
use crate::openapi::{Conflict, ManagementErrors, SignInErrors};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/auth/me", get(me))
        .route("/v1/auth/register-first", post(register_first))
}

pub(crate) fn session_cookie(
    state: &AppState,
    value: &str,
    max_age_seconds: u64,
) -> Option<HeaderValue> {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}{secure}"
    ))
    .ok()
}

#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", summary = "Sign in", description = "Sets the session cookie; the body carries the CSRF token that requests changing something send as `X-CSRF-Token`. Failed attempts are throttled per account and per address.", request_body = LoginRequest, responses((status = 200, description = "Signed in", body = tessera_api_types::LoginResponse), SignInErrors))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Json(request): Json<LoginRequest>,
) -> ApiResult<Response> {
    let password = Password(request.password);
    let (secret, body) = state
        .app
        .auth()
        .login(&request.email, &password, client)
        .await
        .map_err(|error| match error {
            // One answer for an unknown email and a wrong password: which it was is not
            // told (it would say which emails have accounts).
            AppError::Unauthenticated => {
                ApiError::new(ErrorCode::Unauthenticated, "email or password is incorrect")
            }
            other => other.into(),
        })?;
    let max_age = state.app.settings().session_lifetime.as_secs();
    let mut response = AxumJson(body).into_response();
    if let Some(cookie) = session_cookie(&state, &secret.0, max_age) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// Creates the first administrator while none exists, given the one-time setup code,
/// and signs them in.
#[utoipa::path(post, path = "/v1/auth/register-first", tag = "auth", summary = "Create the first administrator", description = "Only while none exists, with the one-time setup code `tessera serve` prints; signs them in.", request_body = RegisterFirstRequest, responses((status = 201, description = "The first administrator, signed in", body = tessera_api_types::LoginResponse), SignInErrors, Conflict))]
pub(crate) async fn register_first(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Json(request): Json<RegisterFirstRequest>,
) -> ApiResult<Response> {
    let password = Password(request.password);
    let (secret, body) = state
        .app
        .auth()
        .register_first(
            &request.setup_code,
            request.email,
            request.name,
            password,
            client,
        )
        .await?;
    let max_age = state.app.settings().session_lifetime.as_secs();
    let mut response = (StatusCode::CREATED, AxumJson(body)).into_response();
    if let Some(cookie) = session_cookie(&state, &secret.0, max_age) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("session" = []), ("personal_token" = [])), summary = "Sign out", description = "Ends the session and clears its cookie.", responses((status = 204, description = "Signed out"), ManagementErrors))]
pub(crate) async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    if let Some(session) = &caller.session {
        state
            .app
            .auth()
            .logout(&caller.principal, session)
            .await
            .map_err(ApiError::from)?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(cookie) = session_cookie(&state, "", 0) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/v1/auth/me", tag = "auth", security(("session" = []), ("personal_token" = [])), summary = "Who you are", description = "The caller and what their role grants.", responses((status = 200, description = "You", body = UserView), ManagementErrors))]
pub(crate) async fn me(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<AxumJson<UserView>> {
    Ok(AxumJson(state.app.auth().me(&caller.principal).await?))
}
