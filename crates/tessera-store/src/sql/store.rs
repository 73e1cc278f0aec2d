//! [`Store`] for [`SqlStore`], once for both backends: each method names the function
//! of its area that does the work.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use tessera_core::{
    AuditEntry, Change, Project, Resource, Role, TokenId, TokenRecord, UserId, UserRecord,
};

use super::{Backend, Sql, SqlStore, catalog, feed, tokens, users};
use crate::{
    AuditQuery, AuditRow, Pruned, SessionRecord, Store, StoreResult, TokenPage, TokenQuery,
    UsageDelta, UsageRow,
};

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    async fn ping(&self) -> StoreResult<()> {
        let mut connection = B::acquire(&self.pool).await?;
        B::execute(&mut connection, Sql::new("SELECT 1")).await?;
        Ok(())
    }

    async fn insert_token(&self, token: &TokenRecord, audit: &AuditEntry) -> StoreResult<()> {
        tokens::insert(self, token, audit).await
    }

    async fn update_token(&self, token: &TokenRecord, audit: &AuditEntry) -> StoreResult<()> {
        tokens::update(self, token, audit).await
    }

    async fn delete_token(&self, id: TokenId, audit: &AuditEntry) -> StoreResult<()> {
        tokens::delete(self, id, audit).await
    }

    async fn get_token(&self, id: TokenId) -> StoreResult<Option<TokenRecord>> {
        tokens::get(self, id).await
    }

    async fn get_tokens(&self, ids: &[TokenId]) -> StoreResult<Vec<TokenRecord>> {
        tokens::get_many(self, ids).await
    }

    async fn tokens_after(
        &self,
        after: Option<TokenId>,
        limit: u32,
    ) -> StoreResult<Vec<TokenRecord>> {
        tokens::after(self, after, limit).await
    }

    async fn list_tokens(&self, query: &TokenQuery) -> StoreResult<TokenPage> {
        tokens::list(self, query).await
    }

    async fn api_token_name_taken(&self, name_key: &str) -> StoreResult<bool> {
        tokens::name_taken(self, name_key).await
    }

    async fn record_usage(&self, batch: &[UsageDelta]) -> StoreResult<()> {
        tokens::record_usage(self, batch).await
    }

    async fn usage(&self, id: TokenId, since: NaiveDate) -> StoreResult<Vec<UsageRow>> {
        tokens::usage(self, id, since).await
    }

    async fn list_resources(&self) -> StoreResult<Vec<Resource>> {
        catalog::list_resources(self).await
    }

    async fn insert_resource(
        &self,
        resource: &Resource,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        catalog::insert_resource(self, resource, now, audit).await
    }

    async fn update_resource(
        &self,
        resource: &Resource,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        catalog::update_resource(self, resource, now, audit).await
    }

    async fn delete_resource(&self, name: &str, audit: &AuditEntry) -> StoreResult<()> {
        catalog::delete_resource(self, name, audit).await
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        catalog::list_projects(self).await
    }

    async fn insert_project(&self, project: &Project, audit: &AuditEntry) -> StoreResult<()> {
        catalog::insert_project(self, project, audit).await
    }

    async fn delete_project(&self, slug: &str, audit: &AuditEntry) -> StoreResult<()> {
        catalog::delete_project(self, slug, audit).await
    }

    async fn count_users(&self) -> StoreResult<u64> {
        users::count_users(self).await
    }

    async fn insert_user(&self, user: &UserRecord, audit: &AuditEntry) -> StoreResult<()> {
        users::insert(self, user, audit).await
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        users::get(self, id).await
    }

    async fn get_user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        users::get_by_email(self, email).await
    }

    async fn insert_session(&self, session: &SessionRecord, audit: &AuditEntry) -> StoreResult<()> {
        users::insert_session(self, session, audit).await
    }

    async fn get_session(
        &self,
        digest: &[u8; 32],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(SessionRecord, UserRecord)>> {
        users::get_session(self, digest, now).await
    }

    async fn delete_session(&self, digest: &[u8; 32], audit: &AuditEntry) -> StoreResult<()> {
        users::delete_session(self, digest, audit).await
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        users::list(self).await
    }

    async fn insert_first_user(&self, user: &UserRecord, audit: &AuditEntry) -> StoreResult<()> {
        users::insert_first(self, user, audit).await
    }

    async fn update_user(
        &self,
        user: &UserRecord,
        end_sessions: bool,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        users::update(self, user, end_sessions, audit).await
    }

    async fn delete_user(&self, id: UserId, audit: &AuditEntry) -> StoreResult<()> {
        users::delete(self, id, audit).await
    }

    async fn tokens_of_owner(&self, owner: UserId) -> StoreResult<Vec<TokenRecord>> {
        tokens::of_owner(self, owner).await
    }

    async fn list_roles(&self) -> StoreResult<Vec<Role>> {
        users::list_roles(self).await
    }

    async fn get_role(&self, name: &str) -> StoreResult<Option<Role>> {
        users::get_role(self, name).await
    }

    async fn insert_role(
        &self,
        role: &Role,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        users::insert_role(self, role, now, audit).await
    }

    async fn update_role(
        &self,
        role: &Role,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        users::update_role(self, role, now, audit).await
    }

    async fn delete_role(&self, name: &str, audit: &AuditEntry) -> StoreResult<()> {
        users::delete_role(self, name, audit).await
    }

    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        feed::list_audit(self, query).await
    }

    async fn record_audit(&self, audit: &AuditEntry) -> StoreResult<()> {
        feed::record_audit(self, audit).await
    }

    async fn latest_change(&self) -> StoreResult<i64> {
        feed::latest_change(self).await
    }

    async fn changes_after(&self, sequence: i64, limit: u32) -> StoreResult<Vec<Change>> {
        feed::changes_after(self, sequence, limit).await
    }

    async fn changes_pruned_through(&self) -> StoreResult<i64> {
        feed::pruned_through(self).await
    }

    async fn prune_changes(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<Pruned> {
        feed::prune(self, before, limit).await
    }

    async fn pepper_fingerprint(&self) -> StoreResult<Option<String>> {
        feed::pepper_fingerprint(self).await
    }

    async fn claim_pepper_fingerprint(&self, fingerprint: &str) -> StoreResult<String> {
        feed::claim_pepper_fingerprint(self, fingerprint).await
    }

    fn change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        B::change_signal(&self.extra)
    }

    fn pool_state(&self) -> Option<(u32, usize)> {
        Some((self.pool.size(), self.pool.num_idle()))
    }
}
