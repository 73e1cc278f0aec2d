//! A deadline on every call of a store whose connections can hang (PostgreSQL over a
//! network): a call that has not answered in time is abandoned and answers
//! `Unavailable`, instead of waiting for the operating system to give up on a dead TCP
//! connection. The connection it used is closed, not reused (see the PostgreSQL
//! store's `after_release` check).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use tessera_core::{
    AuditEntry, Change, Project, Resource, Role, TokenId, TokenRecord, UserId, UserRecord,
};

use crate::{
    AuditQuery, AuditRow, Pruned, SessionRecord, Store, StoreError, StoreResult, TokenPage,
    TokenQuery, UsageDelta, UsageRow,
};

/// `inner`, each call bounded by `limit`.
#[derive(Debug)]
pub(crate) struct WithDeadline<S> {
    inner: S,
    limit: Duration,
}

impl<S> WithDeadline<S> {
    pub(crate) fn new(inner: S, limit: Duration) -> Self {
        Self { inner, limit }
    }

    pub(crate) async fn bound<T>(
        &self,
        call: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        match tokio::time::timeout(self.limit, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(
                format!(
                    "the database did not answer within {} s; the connection was abandoned",
                    self.limit.as_secs_f64()
                )
                .into(),
            )),
        }
    }
}

#[async_trait]
impl<S: Store> Store for WithDeadline<S> {
    async fn ping(&self) -> StoreResult<()> {
        self.bound(self.inner.ping()).await
    }

    async fn insert_token(&self, token: &TokenRecord, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(self.inner.insert_token(token, audit)).await
    }

    async fn update_token(&self, token: &TokenRecord, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(self.inner.update_token(token, audit)).await
    }

    async fn delete_token(&self, id: TokenId, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(self.inner.delete_token(id, audit)).await
    }

    async fn get_token(&self, id: TokenId) -> StoreResult<Option<TokenRecord>> {
        self.bound(self.inner.get_token(id)).await
    }

    async fn get_tokens(&self, ids: &[TokenId]) -> StoreResult<Vec<TokenRecord>> {
        self.bound(self.inner.get_tokens(ids)).await
    }

    async fn tokens_after(
        &self,
        after: Option<TokenId>,
        limit: u32,
    ) -> StoreResult<Vec<TokenRecord>> {
        self.bound(self.inner.tokens_after(after, limit)).await
    }

    async fn list_tokens(&self, query: &TokenQuery) -> StoreResult<TokenPage> {
        self.bound(self.inner.list_tokens(query)).await
    }

    async fn api_token_name_taken(&self, name_key: &str) -> StoreResult<bool> {
        self.bound(self.inner.api_token_name_taken(name_key)).await
    }

    async fn record_usage(&self, batch: &[UsageDelta]) -> StoreResult<()> {
        self.bound(self.inner.record_usage(batch)).await
    }

    async fn usage(&self, id: TokenId, since: NaiveDate) -> StoreResult<Vec<UsageRow>> {
        self.bound(self.inner.usage(id, since)).await
    }

    async fn list_resources(&self) -> StoreResult<Vec<Resource>> {
        self.bound(self.inner.list_resources()).await
    }

    async fn insert_resource(
        &self,
        resource: &Resource,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.bound(self.inner.insert_resource(resource, now, audit))
            .await
    }

    async fn update_resource(
        &self,
        resource: &Resource,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.bound(self.inner.update_resource(resource, now, audit))
            .await
    }

    async fn delete_resource(&self, name: &str, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(self.inner.delete_resource(name, audit)).await
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        self.bound(self.inner.list_projects()).await
    }

    async fn insert_project(&self, project: &Project, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(self.inner.insert_project(project, audit)).await
    }

    async fn delete_project(&self, slug: &str, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(self.inner.delete_project(slug, audit)).await
    }

    async fn count_users(&self) -> StoreResult<u64> {
        self.bound(self.inner.count_users()).await
    }

    async fn insert_user(&self, user: &UserRecord, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(self.inner.insert_user(user, audit)).await
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        self.bound(self.inner.get_user(id)).await
    }

    async fn get_user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        self.bound(self.inner.get_user_by_email(email)).await
    }

    async fn insert_session(&self, session: &SessionRecord, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(self.inner.insert_session(session, audit)).await
    }

    async fn get_session(
        &self,
        digest: &[u8; 32],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(SessionRecord, UserRecord)>> {
        self.bound(self.inner.get_session(digest, now)).await
    }

    async fn delete_session(&self, digest: &[u8; 32], audit: &AuditEntry) -> StoreResult<()> {
        self.bound(self.inner.delete_session(digest, audit)).await
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        self.bound(self.inner.list_users()).await
    }

    async fn insert_first_user(&self, user: &UserRecord, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(self.inner.insert_first_user(user, audit)).await
    }

    async fn update_user(
        &self,
        user: &UserRecord,
        end_sessions: bool,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.bound(self.inner.update_user(user, end_sessions, audit))
            .await
    }

    async fn delete_user(&self, id: UserId, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(self.inner.delete_user(id, audit)).await
    }

    async fn tokens_of_owner(&self, owner: UserId) -> StoreResult<Vec<TokenRecord>> {
        self.bound(self.inner.tokens_of_owner(owner)).await
    }

    async fn list_roles(&self) -> StoreResult<Vec<Role>> {
        self.bound(self.inner.list_roles()).await
    }

    async fn get_role(&self, name: &str) -> StoreResult<Option<Role>> {
        self.bound(self.inner.get_role(name)).await
    }

    async fn insert_role(
        &self,
        role: &Role,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.bound(self.inner.insert_role(role, now, audit)).await
    }

    async fn update_role(
        &self,
        role: &Role,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.bound(self.inner.update_role(role, now, audit)).await
    }

    async fn delete_role(&self, name: &str, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(self.inner.delete_role(name, audit)).await
    }

    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        self.bound(self.inner.list_audit(query)).await
    }

    async fn record_audit(&self, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(self.inner.record_audit(audit)).await
    }

    async fn latest_change(&self) -> StoreResult<i64> {
        self.bound(self.inner.latest_change()).await
    }

    async fn changes_pruned_through(&self) -> StoreResult<i64> {
        self.bound(self.inner.changes_pruned_through()).await
    }

    async fn prune_changes(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<Pruned> {
        self.bound(self.inner.prune_changes(before, limit)).await
    }

    async fn pepper_fingerprint(&self) -> StoreResult<Option<String>> {
        self.bound(self.inner.pepper_fingerprint()).await
    }

    async fn claim_pepper_fingerprint(&self, fingerprint: &str) -> StoreResult<String> {
        self.bound(self.inner.claim_pepper_fingerprint(fingerprint))
            .await
    }

    async fn changes_after(&self, sequence: i64, limit: u32) -> StoreResult<Vec<Change>> {
        self.bound(self.inner.changes_after(sequence, limit)).await
    }

    fn change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.inner.change_signal()
    }

    fn pool_state(&self) -> Option<(u32, usize)> {
        self.inner.pool_state()
    }
}
