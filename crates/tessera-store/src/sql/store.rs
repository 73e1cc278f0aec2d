//! [`Store`] for [`SqlStore`], once for both backends: each method names the function
//! of its area that does the work, within the backend's deadline (see
//! [`crate::deadline`]).

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use tessera_core::{
    AuditEntry, Change, Project, Resource, Role, TokenId, TokenRecord, UserId, UserRecord,
};

use super::{Backend, Sql, SqlStore, catalog, feed, token_list, tokens, users};
use crate::{
    AuditQuery, AuditRow, IndexRecord, Pruned, SessionRecord, Store, StoreResult, TokenPage,
    TokenQuery, UsageDelta, UsageRow,
};

impl<B: Backend> SqlStore<B> {
    /// `call`, bounded by the backend's deadline if it has one.
    async fn bound<T>(&self, call: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        match B::call_deadline(&self.extra) {
            Some(limit) => crate::deadline::bound(limit, call).await,
            None => call.await,
        }
    }
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    async fn ping(&self) -> StoreResult<()> {
        self.bound(async {
            let mut connection = B::acquire(&self.pool).await?;
            B::execute(&mut connection, Sql::new("SELECT 1")).await?;
            Ok(())
        })
        .await
    }

    async fn insert_token(&self, token: &TokenRecord, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(tokens::insert(self, token, audit)).await
    }

    async fn insert_tokens(&self, tokens: &[(TokenRecord, AuditEntry)]) -> StoreResult<()> {
        self.bound(tokens::insert_many(self, tokens)).await
    }

    async fn update_token(&self, token: &TokenRecord, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(tokens::update(self, token, audit)).await
    }

    async fn delete_token(&self, id: TokenId, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(tokens::delete(self, id, audit)).await
    }

    async fn get_token(&self, id: TokenId) -> StoreResult<Option<TokenRecord>> {
        self.bound(tokens::get(self, id)).await
    }

    async fn get_tokens(&self, ids: &[TokenId]) -> StoreResult<Vec<TokenRecord>> {
        self.bound(tokens::get_many(self, ids)).await
    }

    async fn tokens_after(
        &self,
        after: Option<TokenId>,
        limit: u32,
    ) -> StoreResult<Vec<TokenRecord>> {
        self.bound(tokens::after(self, after, limit)).await
    }

    async fn index_records_after(
        &self,
        after: Option<TokenId>,
        limit: u32,
    ) -> StoreResult<Vec<IndexRecord>> {
        self.bound(tokens::index_after(self, after, limit)).await
    }

    async fn list_tokens(&self, query: &TokenQuery) -> StoreResult<TokenPage> {
        self.bound(token_list::list(self, query)).await
    }

    async fn refresh_statistics(&self) -> StoreResult<()> {
        self.bound(async {
            let mut connection = B::acquire(&self.pool).await?;
            B::refresh_statistics(&mut connection).await
        })
        .await
    }

    async fn api_token_name_taken(&self, name_key: &str) -> StoreResult<bool> {
        self.bound(tokens::name_taken(self, name_key)).await
    }

    async fn record_usage(&self, batch: &[UsageDelta]) -> StoreResult<()> {
        self.bound(tokens::record_usage(self, batch)).await
    }

    async fn usage(&self, id: TokenId, since: NaiveDate) -> StoreResult<Vec<UsageRow>> {
        self.bound(tokens::usage(self, id, since)).await
    }

    async fn list_resources(&self) -> StoreResult<Vec<Resource>> {
        self.bound(catalog::list_resources(self)).await
    }

    async fn insert_resource(
        &self,
        resource: &Resource,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.bound(catalog::insert_resource(self, resource, now, audit))
            .await
    }

    async fn update_resource(
        &self,
        resource: &Resource,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.bound(catalog::update_resource(self, resource, now, audit))
            .await
    }

    async fn delete_resource(&self, name: &str, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(catalog::delete_resource(self, name, audit))
            .await
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        self.bound(catalog::list_projects(self)).await
    }

    async fn insert_project(&self, project: &Project, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(catalog::insert_project(self, project, audit))
            .await
    }

    async fn delete_project(&self, slug: &str, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(catalog::delete_project(self, slug, audit)).await
    }

    async fn count_users(&self) -> StoreResult<u64> {
        self.bound(users::count_users(self)).await
    }

    async fn insert_user(&self, user: &UserRecord, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(users::insert(self, user, audit)).await
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        self.bound(users::get(self, id)).await
    }

    async fn get_user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        self.bound(users::get_by_email(self, email)).await
    }

    async fn insert_session(&self, session: &SessionRecord, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(users::insert_session(self, session, audit))
            .await
    }

    async fn get_session(
        &self,
        digest: &[u8; 32],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(SessionRecord, UserRecord)>> {
        self.bound(users::get_session(self, digest, now)).await
    }

    async fn delete_session(&self, digest: &[u8; 32], audit: &AuditEntry) -> StoreResult<()> {
        self.bound(users::delete_session(self, digest, audit)).await
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        self.bound(users::list(self)).await
    }

    async fn insert_first_user(&self, user: &UserRecord, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(users::insert_first(self, user, audit)).await
    }

    async fn update_user(
        &self,
        user: &UserRecord,
        end_sessions: bool,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.bound(users::update(self, user, end_sessions, audit))
            .await
    }

    async fn delete_user(&self, id: UserId, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(users::delete(self, id, audit)).await
    }

    async fn tokens_of_owner(&self, owner: UserId) -> StoreResult<Vec<TokenRecord>> {
        self.bound(tokens::of_owner(self, owner)).await
    }

    async fn list_roles(&self) -> StoreResult<Vec<Role>> {
        self.bound(users::list_roles(self)).await
    }

    async fn get_role(&self, name: &str) -> StoreResult<Option<Role>> {
        self.bound(users::get_role(self, name)).await
    }

    async fn insert_role(
        &self,
        role: &Role,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.bound(users::insert_role(self, role, now, audit)).await
    }

    async fn update_role(
        &self,
        role: &Role,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.bound(users::update_role(self, role, now, audit)).await
    }

    async fn delete_role(&self, name: &str, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(users::delete_role(self, name, audit)).await
    }

    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        self.bound(feed::list_audit(self, query)).await
    }

    async fn record_audit(&self, audit: &AuditEntry) -> StoreResult<()> {
        self.bound(feed::record_audit(self, audit)).await
    }

    async fn latest_change(&self) -> StoreResult<i64> {
        self.bound(feed::latest_change(self)).await
    }

    async fn changes_after(&self, sequence: i64, limit: u32) -> StoreResult<Vec<Change>> {
        self.bound(feed::changes_after(self, sequence, limit)).await
    }

    async fn changes_pruned_through(&self) -> StoreResult<i64> {
        self.bound(feed::pruned_through(self)).await
    }

    async fn prune_changes(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<Pruned> {
        self.bound(feed::prune(self, before, limit)).await
    }

    async fn pepper_fingerprint(&self) -> StoreResult<Option<String>> {
        self.bound(feed::pepper_fingerprint(self)).await
    }

    async fn claim_pepper_fingerprint(&self, fingerprint: &str) -> StoreResult<String> {
        self.bound(feed::claim_pepper_fingerprint(self, fingerprint))
            .await
    }

    fn change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        B::change_signal(&self.extra)
    }

    fn pool_state(&self) -> Option<(u32, usize)> {
        Some((self.pool.size(), self.pool.num_idle()))
    }
}
