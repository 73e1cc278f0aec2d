//! Creating many API tokens at once (`tessera token import`): every request is checked
//! by the same rule as one [`Tokens::create`], and a batch is written in one transaction,
//! each token with its audit row and change-feed row.

use std::collections::HashSet;

use tessera_api_types::{CreateTokenRequest, CreatedToken, TokenView};
use tessera_core::AdminPermission;
use tessera_core::validate;
use tessera_store::StoreError;

use crate::error::{AppError, AppResult};
use crate::principal::Principal;
use crate::tokens::{Tokens, creation_audit};

/// Why a batch was not imported: the request at `index` (in the batch) was refused, or,
/// when the failure is not one request's (a permission, the database), `index` is 0.
#[derive(Debug)]
pub struct ImportFailure {
    pub index: usize,
    pub error: AppError,
}

impl ImportFailure {
    fn of_batch(error: impl Into<AppError>) -> Self {
        Self {
            index: 0,
            error: error.into(),
        }
    }
}

impl Tokens {
    /// Creates the tokens `requests` asks for, all or none (`tokens.create`), and
    /// answers their secrets in the same order. Names must be new, also within the
    /// batch. Nothing is written unless every request passes.
    pub async fn import(
        &self,
        principal: &Principal,
        requests: Vec<CreateTokenRequest>,
    ) -> Result<Vec<CreatedToken>, ImportFailure> {
        principal
            .require(AdminPermission::TokensCreate)
            .map_err(ImportFailure::of_batch)?;
        let now = self.cx.now();
        let catalog = self
            .cx
            .current_catalog()
            .await
            .map_err(ImportFailure::of_batch)?;
        let projects = self
            .cx
            .store
            .list_projects()
            .await
            .map_err(ImportFailure::of_batch)?;
        let mut names = HashSet::new();
        // The rows to write and the secrets to answer, kept apart: each record is held
        // once, and handed to the store by reference.
        let mut rows = Vec::with_capacity(requests.len());
        let mut secrets = Vec::with_capacity(requests.len());
        for (index, request) in requests.into_iter().enumerate() {
            let refuse = |error: AppError| ImportFailure { index, error };
            if !names.insert(validate::name_key(&request.name)) {
                return Err(refuse(AppError::Conflict(format!(
                    "the name `{}` is given twice in this import",
                    request.name
                ))));
            }
            let settings = self
                .new_token_settings(request, &catalog, &projects, now)
                .map_err(|errors| refuse(errors.into()))?;
            let (record, secret) = self.issue(settings, principal, now);
            let audit = creation_audit(principal, "token.create", &record).map_err(refuse)?;
            rows.push((record, audit));
            secrets.push(secret);
        }
        match self.cx.store.insert_tokens(&rows).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => return Err(self.taken_name(&rows).await),
            Err(other) => return Err(ImportFailure::of_batch(other)),
        }
        self.cx.apply_own_write().await;
        Ok(rows
            .into_iter()
            .zip(secrets)
            .map(|((record, _), secret)| CreatedToken {
                record: TokenView::new(&record, now),
                token: secret.expose().to_owned(),
            })
            .collect())
    }

    /// Ends an import (`tokens.create`): refreshes the statistics the database plans
    /// the token list with, so a large import's list is fast at once.
    pub async fn finish_import(&self, principal: &Principal) -> AppResult<()> {
        principal.require(AdminPermission::TokensCreate)?;
        self.cx.store.refresh_statistics().await?;
        Ok(())
    }

    /// The first token of a refused batch whose name an existing API token has.
    async fn taken_name(
        &self,
        rows: &[(tessera_core::TokenRecord, tessera_core::AuditEntry)],
    ) -> ImportFailure {
        for (index, (record, _)) in rows.iter().enumerate() {
            match self
                .cx
                .store
                .api_token_name_taken(&validate::name_key(&record.name))
                .await
            {
                Ok(true) => {
                    return ImportFailure {
                        index,
                        error: AppError::Conflict(format!(
                            "an API token named `{}` already exists",
                            record.name
                        )),
                    };
                }
                Ok(false) => {}
                Err(error) => return ImportFailure::of_batch(error),
            }
        }
        // Taken between the insert and this look (by a concurrent writer, since gone).
        ImportFailure::of_batch(AppError::Conflict(
            "a name of this batch was taken while it was written; retry".into(),
        ))
    }
}
