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
use tessera_core::validate::{self, FieldErrors};
use tessera_core::{AdminPermission, AuditEntry, BuiltinRole, UserId, UserRecord};
use tessera_store::SessionRecord;

use crate::error::{AppError, AppResult};
use crate::principal::Principal;
use crate::{Tessera, audit};

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

impl Tessera {
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

    /// Creates an administrator. The CLI's operator may always; over the API this needs
    /// `users.manage`.
    pub async fn create_admin(
        &self,
        principal: &Principal,
        admin: NewAdmin,
    ) -> AppResult<UserView> {
        self.insert_admin(
            principal,
            admin.email,
            admin.name,
            admin.role,
            Some(admin.password),
        )
        .await
    }

    /// Validates and stores a new administrator. Without a password the account
    /// cannot sign in until an admin sets one.
    pub(crate) async fn insert_admin(
        &self,
        principal: &Principal,
        email: String,
        name: Option<String>,
        role: String,
        password: Option<Password>,
    ) -> AppResult<UserView> {
        principal.require(AdminPermission::UsersManage)?;
        if password.is_some() {
            principal.require_session_for_password()?;
        }
        if self.find_role(&role).await?.is_some() {
            self.ensure_within_reach(principal, &role).await?;
        }
        let user = self.new_user(email, name, role, password).await?;
        let view = self.user_view(&user).await?;
        let changes = audit::diff(None, Some(&audit::snapshot(&view)?));
        let entry = audit::entry(
            principal,
            user.created_at,
            "user.create",
            format!("user:{}", user.id),
            changes,
        );
        self.store.insert_user(&user, &entry).await?;
        self.apply_own_write().await;
        Ok(view)
    }

    /// A validated user record (not yet stored).
    pub(crate) async fn new_user(
        &self,
        email: String,
        name: Option<String>,
        role: String,
        password: Option<Password>,
    ) -> AppResult<UserRecord> {
        let mut errors = FieldErrors::default();
        errors.collect(validate::email(&email));
        let name = name.unwrap_or_else(|| email.clone());
        errors.collect(validate::display_name("name", &name));
        if self.find_role(&role).await?.is_none() {
            errors.add("role", "names no role; see the role list");
        }
        if let Some(password) = &password {
            errors.collect(validate::password(&password.0));
        }
        errors.into_result()?;
        let now = self.clock.now();
        let password_hash = match &password {
            Some(password) => self.hash(password.clone()).await?,
            None => String::new(),
        };
        Ok(UserRecord {
            id: UserId::new_at(now, &mut OsRng),
            email,
            name,
            role,
            password_hash,
            active: true,
            created_at: now,
            updated_at: now,
        })
    }

    /// Hashes a password off the async workers (see [`crate::password`]).
    pub(crate) async fn hash(&self, password: Password) -> AppResult<String> {
        self.passwords.hash(password).await
    }

    /// What the password engine has done since start: hashes, checks, the argon2
    /// work they took and the working memory they share.
    pub fn password_work(&self) -> crate::password::PasswordWork {
        self.passwords.work()
    }

    /// Registers the first administrator (a super-admin) and signs them in. Refused
    /// (`Conflict`) once any administrator exists; otherwise `setup_code` must be the
    /// code [`Tessera::prepare_first_run`] armed in this process (checked first, before
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
        if self.store.count_users().await? > 0 {
            return Err(AppError::Conflict(EXISTS.into()));
        }
        self.check_setup_code(setup_code, client)?;
        let user = self
            .new_user(
                email,
                name,
                BuiltinRole::SuperAdmin.as_str().to_owned(),
                Some(password.clone()),
            )
            .await?;
        let view = self.user_view(&user).await?;
        let entry = AuditEntry {
            at: user.created_at,
            actor: format!("user:{}", user.email),
            action: "user.register_first".into(),
            target: format!("user:{}", user.id),
            client_address: client.map(|address| address.to_string()),
            changes: audit::diff(None, Some(&audit::snapshot(&view)?)),
        };
        let inserted = self.store.insert_first_user(&user, &entry).await;
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
        self.apply_own_write().await;
        self.login(&user.email, &password, client).await
    }

    /// What `role` grants (see [`grants_of`]).
    pub(crate) async fn role_grants(&self, role: &str) -> AppResult<BTreeSet<AdminPermission>> {
        Ok(grants_of(self.find_role(role).await?.as_ref()))
    }

    /// A user as the API shows it, with what their role grants now.
    pub(crate) async fn user_view(&self, user: &UserRecord) -> AppResult<UserView> {
        Ok(user_view_with(user, self.role_grants(&user.role).await?))
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
        let now = self.clock.now();
        let account = email.trim().to_lowercase();
        let account_key = self.login_account_key(&account);
        let address = client.map(crate::throttle::address_key);
        // The address first: a blocked address is answered before anything is recorded
        // about the account it names, so it cannot fill the account table.
        let address_failures = match address {
            Some(address) => Some(
                self.login_addresses
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
        let account_reserved = match self.login_accounts.attempt(&account_key, now) {
            Ok(_) => true,
            Err(_)
                if address_failures == Some(0)
                    && self.login_bypasses.attempt(&account_key, now).is_ok() =>
            {
                false
            }
            Err(retry_after) => {
                if let Some(address) = address {
                    self.login_addresses.forgive(&address);
                }
                return Err(AppError::RateLimited { retry_after });
            }
        };
        let user = self.store.get_user_by_email(&account).await?;
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let matches = self.check_password(password.clone(), hash).await?;
        let client_address = client.map(|address| address.to_string());
        match user {
            Some(user) if matches && user.active => {
                // Past the account's budget the failures stay counted: they were not
                // this client's.
                if account_reserved {
                    self.login_accounts.clear(&account_key);
                } else {
                    // The owner's own try past the lock spends none of its budget.
                    self.login_bypasses.forgive(&account_key);
                }
                if let Some(address) = address {
                    self.login_addresses.forgive(&address);
                }
                let mut random = [0u8; 32];
                OsRng.fill_bytes(&mut random);
                let secret = SessionSecret(URL_SAFE_NO_PAD.encode(random));
                let lifetime = Duration::from_std(self.settings.session_lifetime)
                    .unwrap_or(Duration::hours(12));
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
                self.store.insert_session(&session, &entry).await?;
                let csrf_token = self.csrf_token(&secret);
                Ok((
                    secret,
                    LoginResponse {
                        user: self.user_view(&user).await?,
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
                if let Err(error) = self.store.record_audit(&entry).await {
                    tracing::warn!(%error, "could not record a failed login");
                }
                Err(AppError::Unauthenticated)
            }
        }
    }

    /// Checks a password off the async workers (argon2 takes tens of milliseconds of
    /// CPU), a few at a time, so logins never stall verification. Every check costs the
    /// same argon2 work: an unknown account, or one without a usable hash (no password
    /// yet), is checked against a dummy hash with the same parameters and never matches.
    async fn check_password(&self, password: Password, hash: Option<String>) -> AppResult<bool> {
        self.passwords.check(password, hash).await
    }

    /// The principal a session cookie stands for, or `Unauthenticated`.
    pub async fn authenticate_session(
        &self,
        secret: &SessionSecret,
        client: Option<IpAddr>,
    ) -> AppResult<Principal> {
        let now = self.clock.now();
        let found = self
            .store
            .get_session(&self.session_digest(&secret.0), now)
            .await?;
        match found {
            Some((_, user)) if user.active => Ok(Principal::session(
                &user,
                self.role_grants(&user.role).await?,
                client.map(|address| address.to_string()),
            )),
            _ => Err(AppError::Unauthenticated),
        }
    }

    /// Ends a session.
    pub async fn logout(&self, principal: &Principal, secret: &SessionSecret) -> AppResult<()> {
        let now = self.clock.now();
        let entry = audit::entry(
            principal,
            now,
            "auth.logout",
            principal.actor.clone(),
            serde_json::json!({}),
        );
        self.store
            .delete_session(&self.session_digest(&secret.0), &entry)
            .await?;
        Ok(())
    }

    /// The signed-in admin.
    pub async fn me(&self, principal: &Principal) -> AppResult<UserView> {
        let id = principal.user_id.ok_or(AppError::Unauthenticated)?;
        let user = self
            .store
            .get_user(id)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        self.user_view(&user).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Settings, SystemClock};
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
        for i in 0..app.settings.login_failures_per_address {
            let email = format!("user{i}@example.com");
            let outcome = app.login(&email, &wrong(), address).await;
            assert!(matches!(outcome, Err(AppError::Unauthenticated)));
        }
        let tracked = app.login_accounts.len();
        for i in 0..50 {
            let email = format!("other{i}@example.com");
            let outcome = app.login(&email, &wrong(), address).await;
            assert!(matches!(outcome, Err(AppError::RateLimited { .. })));
        }
        assert_eq!(
            app.login_accounts.len(),
            tracked,
            "refused before any account key was recorded"
        );
    }
}
