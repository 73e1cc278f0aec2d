//! Tokens, users and roles named on the command line by their id or their unique name.
//!
//! An id is used as it is. A name is looked up: exactly as written first, then ignoring
//! case; the match is said on stderr (`using token "CI deploy" (0190…), matched by
//! name`), several matches are refused with the candidates listed, and none is a
//! not-found error (exit 3) that says where to look.

use anyhow::Result;
use tessera_api_types::{TokenView, UserView};
use tessera_app::{AppError, Principal, Tessera};
use tessera_core::{TokenFilter, TokenPageSize};

use crate::exit::{NotFoundError, UsageError};

/// The candidates whose `name` is `wanted`: the exact matches, or else those equal to it
/// as the server compares names (ignoring case and width).
fn named<'a, T>(items: &'a [T], wanted: &str, name: impl Fn(&T) -> &str) -> Vec<&'a T> {
    let exact: Vec<&T> = items.iter().filter(|item| name(item) == wanted).collect();
    if !exact.is_empty() {
        return exact;
    }
    // Otherwise as the server compares names (case- and width-insensitive, NFKC), so a
    // name typed in another width or case still finds its record.
    let wanted = tessera_core::validate::name_key(wanted);
    items
        .iter()
        .filter(|item| tessera_core::validate::name_key(name(item)) == wanted)
        .collect()
}

/// Refuses a token secret given where an id or name belongs (`token delete $T`, say)
/// without repeating it: errors reach terminals and CI logs.
fn not_a_secret(key: &str) -> Result<()> {
    if tessera_core::token::looks_like_secret(key) {
        return Err(UsageError(format!(
            "`{}` is a token secret, not an id or a name; name the token by its id or name \
             (to check a secret, use `tessera verify -`)",
            tessera_core::token::redact_secrets(key)
        ))
        .into());
    }
    Ok(())
}

/// The refusal of a name that several records have, listing them.
fn ambiguous(what: &str, key: &str, candidates: Vec<String>, list: &str) -> anyhow::Error {
    UsageError(format!(
        "{} {what}s match `{key}`; name one by its id:\n  {}\n(see `{list}`)",
        candidates.len(),
        candidates.join("\n  ")
    ))
    .into()
}

/// One page of the tokens whose name contains `name` (the search `token list --search`
/// makes).
fn name_search(name: &str, cursor: Option<String>) -> TokenFilter {
    TokenFilter {
        search: Some(name.to_owned()),
        limit: TokenPageSize::largest(),
        cursor,
        ..TokenFilter::default()
    }
}

/// The id of the API token `key` names: its id (a UUID) or its name.
pub async fn token(app: &Tessera, principal: &Principal, key: &str) -> Result<String> {
    not_a_secret(key)?;
    if uuid_like(key) {
        match app.tokens().get(principal, key).await {
            Ok(token) => return Ok(token.id.to_string()),
            Err(AppError::NotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let mut found: Vec<TokenView> = Vec::new();
    let mut cursor = None;
    loop {
        let page =
            crate::token_commands::list_tokens(app, principal, name_search(key, cursor)).await?;
        found.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let matches = named(&found, key, |token| token.name.as_str());
    match matches.as_slice() {
        [token] => {
            eprintln!(
                "using token \"{}\" ({}), matched by name",
                token.name, token.id
            );
            Ok(token.id.to_string())
        }
        [] => Err(NotFoundError(format!(
            "no API token has the id or name `{key}` (see `tessera token list`)"
        ))
        .into()),
        many => Err(ambiguous(
            "token",
            key,
            many.iter()
                .map(|token| format!("{}  {}", token.id, token.name))
                .collect(),
            "tessera token list",
        )),
    }
}

/// The id of the administrator `key` names: their id, email or name.
pub async fn user(app: &Tessera, principal: &Principal, key: &str) -> Result<String> {
    not_a_secret(key)?;
    let users = app.users().list(principal).await?;
    if let Some(user) = users.iter().find(|user| user.id.to_string() == key) {
        return Ok(user.id.to_string());
    }
    if let Some(user) = users
        .iter()
        .find(|user| user.email.eq_ignore_ascii_case(key))
    {
        if user.email != key {
            eprintln!(
                "using administrator {} ({}), matched by email",
                user.email, user.id
            );
        }
        return Ok(user.id.to_string());
    }
    let matches = named(&users, key, |user: &UserView| user.name.as_str());
    match matches.as_slice() {
        [user] => {
            eprintln!(
                "using administrator {} \"{}\" ({}), matched by name",
                user.email, user.name, user.id
            );
            Ok(user.id.to_string())
        }
        [] => Err(NotFoundError(format!(
            "no administrator has the id, email or name `{key}` (see `tessera user list`)"
        ))
        .into()),
        many => Err(ambiguous(
            "administrator",
            key,
            many.iter()
                .map(|user| format!("{}  {}  \"{}\"", user.id, user.email, user.name))
                .collect(),
            "tessera user list",
        )),
    }
}

/// The role `key` names (a role's id is its name), as the application spells it.
pub async fn role(app: &Tessera, principal: &Principal, key: &str) -> Result<String> {
    not_a_secret(key)?;
    let roles = app.roles().list(principal).await?;
    let matches = named(&roles, key, |role| role.name.as_str());
    match matches.as_slice() {
        [role] => {
            if role.name != key {
                eprintln!("using role {}, matched by name", role.name);
            }
            Ok(role.name.clone())
        }
        [] => {
            let names: Vec<&str> = roles.iter().map(|role| role.name.as_str()).collect();
            Err(NotFoundError(format!(
                "no role is named `{key}`; the roles are: {}",
                names.join(", ")
            ))
            .into())
        }
        many => Err(ambiguous(
            "role",
            key,
            many.iter().map(|role| role.name.clone()).collect(),
            "tessera role list",
        )),
    }
}

/// Whether `text` has the shape of a UUID (so it is tried as an id first).
fn uuid_like(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(index, byte)| match index {
            8 | 13 | 18 | 23 => byte == b'-',
            _ => byte.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_win_over_ones_that_differ_in_case() {
        let names = ["Deploy", "deploy", "other"];
        assert_eq!(named(&names, "deploy", |n| n), vec![&"deploy"]);
        assert_eq!(named(&names, "DEPLOY", |n| n).len(), 2);
        assert!(named(&names, "dep", |n| n).is_empty());
        // Full-width letters name the same token, as the server's uniqueness rule says.
        assert_eq!(named(&names, "ＯＴＨＥＲ", |n| n), vec![&"other"]);
    }

    #[test]
    fn uuids_are_recognised_by_shape() {
        assert!(uuid_like("0190f3c2-7d4e-7a91-8c55-2b0e6f1d9a43"));
        assert!(!uuid_like("CI deploy"));
        assert!(!uuid_like("0190f3c2x7d4e-7a91-8c55-2b0e6f1d9a43"));
    }
}
