//! The admin console at `/admin`: server-rendered pages (askama) with a little plain
//! CSS and JS, in English and Japanese. Handlers call `tessera-app` with typed inputs,
//! exactly as the REST handlers do; permissions are enforced there, and pages only
//! hide what the signed-in admin's role cannot use.
//!
//! **Invariant:** a secret appears only in the one page that answers the form post
//! which created or regenerated it; that page replaces its own URL in the browser's
//! history and, like every page, is sent `Cache-Control: no-store`.

pub(crate) mod assets;
mod audit;
mod auth;
mod catalog;
mod chart;
mod console;
mod i18n;
pub(crate) mod page;
mod profile;
mod roles;
mod token_form;
mod tokens;
mod users;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};

use crate::AppState;

pub use i18n::Lang;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/admin") }))
        .route("/admin", get(|| async { Redirect::to("/admin/tokens") }))
        .route("/admin/", get(|| async { Redirect::to("/admin/tokens") }))
        .route(
            &format!("{}/{{hash}}/{{name}}", assets::PREFIX),
            get(assets::serve),
        )
        .route("/admin/login", get(auth::login_page).post(auth::login))
        .route("/admin/setup", get(auth::setup_page).post(auth::setup))
        .route("/admin/logout", post(auth::logout))
        .route("/admin/lang/{code}", get(auth::switch_language))
        .route("/admin/tokens", get(tokens::list).post(tokens::create))
        .route("/admin/tokens/new", get(tokens::new))
        .route("/admin/tokens/{id}", get(tokens::show).post(tokens::update))
        .route("/admin/tokens/{id}/{action}", post(tokens::act))
        .route("/admin/profile", get(profile::show))
        .route("/admin/profile/tokens", post(profile::create))
        .route("/admin/profile/tokens/{id}/{action}", post(profile::act))
        .route(
            "/admin/projects",
            get(catalog::projects).post(catalog::create_project),
        )
        .route(
            "/admin/projects/{slug}/delete",
            post(catalog::delete_project),
        )
        .route(
            "/admin/resources",
            get(catalog::resources).post(catalog::create_resource),
        )
        .route("/admin/resources/{name}", post(catalog::update_resource))
        .route(
            "/admin/resources/{name}/delete",
            post(catalog::delete_resource),
        )
        .route("/admin/users", get(users::list).post(users::create))
        .route("/admin/users/{id}", post(users::update))
        .route("/admin/users/{id}/delete", post(users::delete))
        .route("/admin/roles", get(roles::list).post(roles::create))
        .route("/admin/roles/{id}", post(roles::update))
        .route("/admin/roles/{id}/delete", post(roles::delete))
        .route("/admin/audit", get(audit::list))
}
