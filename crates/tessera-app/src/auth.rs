//! Administrators and their sessions: argon2id passwords, login throttling, session
//! cookies stored only as keyed digests, and CSRF tokens derived from the session.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use rand::RngCore;
use rand::rngs::OsRng;
use std::collections::BTreeSet;
use tessera_api_types::{LoginResponse, UserView};
use tessera_core::digest::constant_time_eq;
use tessera_core::validate;
use tessera_core::{AdminPermission, AuditEntry, BuiltinRole, TokenKind, UserRecord};
use tessera_store::SessionRecord;

use crate::error::{AppError, AppResult};
use crate::principal::Principal;
use std::sync::{Arc, Mutex};

use tessera_core::{Pepper, TokenFormat};

use crate::audit;
use crate::context::Context;
use crate::metrics::Metrics;
use crate::password::Passwords;
use crate::roles::Roles;
use crate::throttle::FailureThrottle;
use crate::users::Users;
use crate::verify::{Freshness, Verifier};
use crate::{Settings, VerifyQuery};

/// A password as typed. `Debug` never prints it.
#[derive(Clone)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// The session cookie's value, returned once by login. `Debug` never prints it.
#[derive(Clone)]
pub struct SessionSecret(pub String);

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

/// A new admin, as `tessera admin create` or `POST /v1/users` gives it.
#[derive(Debug, Clone)]
pub struct NewAdmin {
    pub email: String,
    pub name: Option<String>,
    pub role: String,
    pub password: Password,
}

/// What a user holding `role` may do: what it grants, and nothing when no role has
/// the user's role name (a role deleted under them grants nothing, never everything).
pub(crate) fn grants_of(role: Option<&tessera_core::Role>) -> BTreeSet<AdminPermission> {
    role.map(tessera_core::Role::granted).unwrap_or_default()
}

/// A user as the API shows it, given what their role grants.
pub(crate) fn user_view_with(user: &UserRecord, granted: BTreeSet<AdminPermission>) -> UserView {
    UserView {
        id: user.id.0,
        email: user.email.clone(),
        name: user.name.clone(),
        role: user.role.clone(),
        permissions: granted.into_iter().collect(),
        active: user.active,
        created_at: user.created_at,
    }
}

/// What a login's throttles track (see [`Auth::login`]).
#[derive(Debug)]
pub(crate) struct LoginThrottles {
    /// Keyed by a keyed digest of the normalized email (see `login_account_key`), so
    /// an entry has a fixed size whatever was typed.
    pub accounts: FailureThrottle<[u8; 32]>,
    pub addresses: FailureThrottle<IpAddr>,
    /// Tries a locked account still allows from addresses that have not failed
    /// themselves (so its owner is not locked out), bounded per account.
    pub bypasses: FailureThrottle<[u8; 32]>,
}

impl LoginThrottles {
    pub fn new(settings: &Settings) -> Self {
        Self {
            accounts: FailureThrottle::new(
                "login failures per account",
                settings.login_failures_per_account,
                settings.login_failure_window,
            ),
            addresses: FailureThrottle::new(
                "login failures per address",
                settings.login_failures_per_address,
                settings.login_failure_window,
            ),
            bypasses: FailureThrottle::new(
                "login tries past an account's lock",
                settings.login_failures_per_address,
                settings.login_failure_window,
            ),
        }
    }
}

/// Signing in and out, sessions and personal tokens as credentials for the management
/// API, CSRF tokens, and the first run's registration.
#[derive(Debug, Clone)]
pub struct Auth {
    pub(crate) cx: Context,
    pepper: Pepper,
    token_format: TokenFormat,
    session_lifetime: std::time::Duration,
    users: Users,
    roles: Roles,
    passwords: Arc<Passwords>,
    pub(crate) throttles: Arc<LoginThrottles>,
    verifier: Arc<Verifier>,
    freshness: Freshness,
    /// The first-run setup code, while one is armed (see [`crate::first_run`]).
    pub(crate) setup_code: Arc<Mutex<Option<crate::first_run::ArmedCode>>>,
    metrics: Arc<Metrics>,
}

impl Auth {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cx: Context,
        settings: &Settings,
        pepper: Pepper,
        users: Users,
        roles: Roles,
        passwords: Arc<Passwords>,
        verifier: Arc<Verifier>,
        freshness: Freshness,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            cx,
            pepper,
            token_format: settings.token_format.clone(),
            session_lifetime: settings.session_lifetime,
            users,
            roles,
            passwords,
            throttles: Arc::new(LoginThrottles::new(settings)),
            verifier,
            freshness,
            setup_code: Arc::new(Mutex::new(None)),
            metrics,
        }
    }

    fn session_digest(&self, secret: &str) -> [u8; 32] {
        self.pepper.mac(format!("session:{secret}").as_bytes())
    }

    /// The key a login's account is throttled under: a keyed digest of the
    /// normalized email, so an entry has a fixed size however long the typed email is.
    fn login_account_key(&self, account: &str) -> [u8; 32] {
        self.pepper
            .mac(format!("login-account:{account}").as_bytes())
    }

    /// The CSRF token of a session: derived, so nothing more is stored.
    pub fn csrf_token(&self, session: &SessionSecret) -> String {
        URL_SAFE_NO_PAD.encode(self.pepper.mac(format!("csrf:{}", session.0).as_bytes()))
    }

    /// Whether `presented` is the CSRF token of `session` (constant-time).
    pub fn csrf_matches(&self, session: &SessionSecret, presented: &str) -> bool {
        constant_time_eq(self.csrf_token(session).as_bytes(), presented.as_bytes())
    }

    /// What the password engine has done since start: hashes, checks, the argon2
    /// work they took and the working memory they share.
    pub fn password_work(&self) -> crate::password::PasswordWork {
        self.passwords.work()
    }

    /// Registers the first administrator (a super-admin) and signs them in. Refused
    /// (`Conflict`) once any administrator exists; otherwise `setup_code` must be the
    /// code [`Auth::prepare_first_run`] armed in this process (checked first, before
    /// any password work; a wrong one counts against the client address's login
    /// budget). Success retires the code.
    pub async fn register_first(
        &self,
        setup_code: &str,
        email: String,
        name: Option<String>,
        password: Password,
        client: Option<IpAddr>,
    ) -> AppResult<(SessionSecret, LoginResponse)> {
        const EXISTS: &str = "an administrator already exists; sign in instead";
        if self.cx.store.count_users().await? > 0 {
            return Err(AppError::Conflict(EXISTS.into()));
        }
        self.check_setup_code(setup_code, client)?;
        let user = self
            .users
            .new_record(
                email,
                name,
                BuiltinRole::SuperAdmin.as_str().to_owned(),
                Some(password.clone()),
            )
            .await?;
        let view = self.roles.user_view(&user).await?;
        let entry = AuditEntry {
            at: user.created_at,
            actor: format!("user:{}", user.email),
            action: "user.register_first".into(),
            target: format!("user:{}", user.id),
            client_address: client.map(|address| address.to_string()),
            changes: audit::diff(None, Some(&audit::snapshot(&view)?)),
        };
        let inserted = self.cx.store.insert_first_user(&user, &entry).await;
        if matches!(
            inserted,
            Ok(()) | Err(tessera_store::StoreError::Conflict { .. })
        ) {
            // Either way an administrator exists now: the code opens nothing more.
            self.retire_setup_code();
        }
        inserted.map_err(|error| match error {
            tessera_store::StoreError::Conflict { .. } => AppError::Conflict(EXISTS.into()),
            other => other.into(),
        })?;
        self.cx.apply_own_write().await;
        self.login(&user.email, &password, client).await
    }

    /// Signs an admin in. Every attempt is reserved against the client address's and
    /// then the account's budgets before the password is checked (so parallel guesses
    /// cannot outrun the throttle) and given back on success. An account past its budget
    /// is refused except from an address with no failures of its own, so others'
    /// failures cannot lock its owner out. Failures are recorded in the audit log; the
    /// answer never says which part was wrong.
    pub async fn login(
        &self,
        email: &str,
        password: &Password,
        client: Option<IpAddr>,
    ) -> AppResult<(SessionSecret, LoginResponse)> {
        // No account's email holds a control character, and the database must not be
        // asked about one (PostgreSQL refuses NUL): say so before anything else.
        validate::single_line("email", email)?;
        let now = self.cx.now();
        let account = email.trim().to_lowercase();
        let account_key = self.login_account_key(&account);
        let address = client.map(crate::throttle::address_key);
        // The address first: a blocked address is answered before anything is recorded
        // about the account it names, so it cannot fill the account table.
        let address_failures = match address {
            Some(address) => Some(
                self.throttles
                    .addresses
                    .attempt(&address, now)
                    .map_err(|retry_after| AppError::RateLimited { retry_after })?,
            ),
            None => None,
        };
        // An account over its budget still lets an address that has not failed itself
        // (no failure and no attempt in flight in its window) try, so failures from
        // elsewhere cannot lock the owner out; once it fails, it waits like the others.
        // Those fresh-address tries are themselves bounded per account (many addresses,
        // an IPv6 block say, must not buy many guesses): past that budget the account is
        // locked for everyone until its window ends.
        let account_reserved = match self.throttles.accounts.attempt(&account_key, now) {
            Ok(_) => true,
            Err(_)
                if address_failures == Some(0)
                    && self.throttles.bypasses.attempt(&account_key, now).is_ok() =>
            {
                false
            }
            Err(retry_after) => {
                if let Some(address) = address {
                    self.throttles.addresses.forgive(&address);
                }
                return Err(AppError::RateLimited { retry_after });
            }
        };
        let user = self.cx.store.get_user_by_email(&account).await?;
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let matches = self.passwords.check(password.clone(), hash).await?;
        let client_address = client.map(|address| address.to_string());
        match user {
            Some(user) if matches && user.active => {
                // Past the account's budget the failures stay counted: they were not
                // this client's.
                if account_reserved {
                    self.throttles.accounts.clear(&account_key);
                } else {
                    // The owner's own try past the lock spends none of its budget.
                    self.throttles.bypasses.forgive(&account_key);
                }
                if let Some(address) = address {
                    self.throttles.addresses.forgive(&address);
                }
                let mut random = [0u8; 32];
                OsRng.fill_bytes(&mut random);
                let secret = SessionSecret(URL_SAFE_NO_PAD.encode(random));
                let lifetime =
                    Duration::from_std(self.session_lifetime).unwrap_or(Duration::hours(12));
                let session = SessionRecord {
                    digest: self.session_digest(&secret.0),
                    user_id: user.id,
                    created_at: now,
                    expires_at: now + lifetime,
                };
                let entry = AuditEntry {
                    at: now,
                    actor: format!("user:{}", user.email),
                    action: "auth.login".into(),
                    target: format!("user:{}", user.id),
                    client_address,
                    changes: serde_json::json!({}),
                };
                self.cx.store.insert_session(&session, &entry).await?;
                let csrf_token = self.csrf_token(&secret);
                Ok((
                    secret,
                    LoginResponse {
                        user: self.roles.user_view(&user).await?,
                        csrf_token,
                    },
                ))
            }
            user => {
                // What was typed as an email is recorded only when it names an account:
                // a password pasted into the wrong field must not land in the audit log.
                let target =
                    user.map_or_else(|| "user:<unknown>".to_owned(), |u| format!("user:{}", u.id));
                let entry = AuditEntry {
                    at: now,
                    actor: "anonymous".into(),
                    action: "auth.login_failed".into(),
                    target,
                    client_address,
                    changes: serde_json::json!({}),
                };
                self.metrics.login_failed();
                if let Err(error) = self.cx.store.record_audit(&entry).await {
                    tracing::warn!(%error, "could not record a failed login");
                }
                Err(AppError::Unauthenticated)
            }
        }
    }

    /// The principal a session cookie stands for, or `Unauthenticated`.
    pub async fn authenticate_session(
        &self,
        secret: &SessionSecret,
        client: Option<IpAddr>,
    ) -> AppResult<Principal> {
        let now = self.cx.now();
        let found = self
            .cx
            .store
            .get_session(&self.session_digest(&secret.0), now)
            .await?;
        match found {
            Some((_, user)) if user.active => Ok(Principal::session(
                &user,
                self.roles.grants(&user.role).await?,
                client.map(|address| address.to_string()),
            )),
            _ => Err(AppError::Unauthenticated),
        }
    }

    /// Ends a session.
    pub async fn logout(&self, principal: &Principal, secret: &SessionSecret) -> AppResult<()> {
        let now = self.cx.now();
        let entry = audit::entry(
            principal,
            now,
            "auth.logout",
            principal.actor.clone(),
            serde_json::json!({}),
        );
        self.cx
            .store
            .delete_session(&self.session_digest(&secret.0), &entry)
            .await?;
        Ok(())
    }

    /// The principal a `Bearer` token stands for on management routes. Only personal
    /// tokens qualify; the owner must be active, and the token acts with the owner's
    /// role as it is now (restricted to reading for read-only tokens).
    pub async fn authenticate_bearer(
        &self,
        token: &str,
        client: Option<IpAddr>,
    ) -> AppResult<Principal> {
        // Only a personal token's prefix gets as far as the index: an API token sent
        // here is refused without counting as a use of it.
        match self.token_format.parse(token) {
            Ok(parsed) if parsed.kind == TokenKind::Personal => {}
            _ => return Err(AppError::Unauthenticated),
        }
        self.freshness.check()?;
        let query = VerifyQuery {
            token,
            permission: None,
            project: None,
        };
        let accepted = self
            .verifier
            .accept_personal(query, client, self.cx.now())
            .map_err(|(code, retry_after)| match (code, retry_after) {
                (tessera_api_types::VerifyCode::RateLimited, Some(retry_after)) => {
                    AppError::RateLimited { retry_after }
                }
                _ => AppError::Unauthenticated,
            })?;
        let (TokenKind::Personal, Some(owner)) = (accepted.kind, accepted.owner_id()) else {
            return Err(AppError::Unauthenticated);
        };
        let user = self
            .cx
            .store
            .get_user(owner)
            .await?
            .filter(|user| user.active)
            .ok_or(AppError::Unauthenticated)?;
        let granted = self.roles.grants(&user.role).await?;
        Ok(Principal::personal_token(
            &user,
            tessera_core::PersonalAccess::of_token_type(accepted.token_type),
            granted,
            client.map(|address| address.to_string()),
        ))
    }

    /// The signed-in admin.
    pub async fn me(&self, principal: &Principal) -> AppResult<UserView> {
        let id = principal.user_id.ok_or(AppError::Unauthenticated)?;
        let user = self
            .cx
            .store
            .get_user(id)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        self.roles.user_view(&user).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Settings, SystemClock, Tessera};
    use std::sync::Arc;

    async fn app(dir: &tempfile::TempDir) -> Tessera {
        let store = tessera_store::open(&tessera_store::sqlite_url_in(dir.path()))
            .await
            .unwrap();
        Tessera::new(
            store,
            tessera_core::Pepper::from_bytes([7; 32]),
            Settings::default(),
            Arc::new(SystemClock),
        )
        .unwrap()
    }

    fn wrong() -> Password {
        Password("not the password".into())
    }

    #[tokio::test]
    async fn a_blocked_address_records_nothing_about_the_accounts_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(&dir).await;
        let address = Some("192.0.2.7".parse().unwrap());
        for i in 0..app.settings().login_failures_per_address {
            let email = format!("user{i}@example.com");
            let outcome = app.auth().login(&email, &wrong(), address).await;
            assert!(matches!(outcome, Err(AppError::Unauthenticated)));
        }
        let tracked = app.auth().throttles.accounts.len();
        for i in 0..50 {
            let email = format!("other{i}@example.com");
            let outcome = app.auth().login(&email, &wrong(), address).await;
            assert!(matches!(outcome, Err(AppError::RateLimited { .. })));
        }
        assert_eq!(
            app.auth().throttles.accounts.len(),
            tracked,
            "refused before any account key was recorded"
        );
    }
}
