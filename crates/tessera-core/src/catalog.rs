//! The resource catalog of the protected API, permissions, and token types.
//!
//! A permission is `"<resource>.<action>"`. Read-only tokens get every `read` action,
//! full-access tokens every action, custom tokens exactly their list. A permission
//! that is not in the catalog is granted to nobody, so deleting an action revokes it
//! everywhere at once.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::validate::FieldErrors;

/// Whether an action reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
pub enum ActionKind {
    Read,
    Write,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            _ => None,
        }
    }
}

/// One named action of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub name: String,
    pub kind: ActionKind,
}

/// A resource of the protected API and its actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    pub description: String,
    pub actions: Vec<Action>,
}

/// Whether `name` is a valid resource or action name: `[a-zA-Z][a-zA-Z0-9_-]{0,63}`,
/// and not a token secret (which the pattern would admit, and messages would repeat).
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphabetic()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        && !crate::token::looks_like_secret(name)
}

impl Resource {
    /// Checks names, description length and action uniqueness.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::default();
        if !is_valid_name(&self.name) {
            errors.add("name", "must match [a-zA-Z][a-zA-Z0-9_-]{0,63}");
        }
        errors.collect(crate::validate::description(&self.description));
        if self.actions.is_empty() {
            errors.add("actions", "must list at least one action");
        }
        let mut seen = BTreeSet::new();
        for (index, action) in self.actions.iter().enumerate() {
            if !is_valid_name(&action.name) {
                errors.add(
                    format!("actions[{index}].name"),
                    "must match [a-zA-Z][a-zA-Z0-9_-]{0,63}",
                );
            } else if !seen.insert(action.name.as_str()) {
                errors.add(format!("actions[{index}].name"), "is listed twice");
            }
        }
        errors.into_result()
    }

    /// The permissions this resource defines, as `resource.action` strings.
    pub fn permissions(&self) -> impl Iterator<Item = String> + '_ {
        self.actions
            .iter()
            .map(|action| format!("{}.{}", self.name, action.name))
    }
}

/// A parsed `resource.action` permission.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    pub resource: String,
    pub action: String,
}

impl Permission {
    pub fn parse(text: &str) -> Option<Self> {
        let (resource, action) = text.split_once('.')?;
        (is_valid_name(resource) && is_valid_name(action)).then(|| Self {
            resource: resource.to_owned(),
            action: action.to_owned(),
        })
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.resource, self.action)
    }
}

/// A snapshot of the catalog, indexed for permission checks.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    kinds: HashMap<String, ActionKind>,
}

impl Catalog {
    pub fn new<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> Self {
        let kinds = resources
            .into_iter()
            .flat_map(|resource| {
                resource
                    .actions
                    .iter()
                    .map(move |action| (format!("{}.{}", resource.name, action.name), action.kind))
            })
            .collect();
        Self { kinds }
    }

    /// The kind of `permission`, or `None` when the catalog does not define it.
    pub fn kind_of(&self, permission: &str) -> Option<ActionKind> {
        self.kinds.get(permission).copied()
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
pub enum TokenType {
    ReadOnly,
    FullAccess,
    Custom,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read-only",
            Self::FullAccess => "full-access",
            Self::Custom => "custom",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read-only" => Some(Self::ReadOnly),
            "full-access" => Some(Self::FullAccess),
            "custom" => Some(Self::Custom),
            _ => None,
        }
    }

    /// Whether a token of this type (with `custom` as its list) grants `permission`.
    pub fn grants(
        self,
        custom: &dyn Fn(&str) -> bool,
        catalog: &Catalog,
        permission: &str,
    ) -> bool {
        match (self, catalog.kind_of(permission)) {
            (_, None) => false,
            (Self::FullAccess, Some(_)) => true,
            (Self::ReadOnly, Some(kind)) => kind == ActionKind::Read,
            (Self::Custom, Some(_)) => custom(permission),
        }
    }

    /// Validates the permission list saved with a token of this type and returns it
    /// sorted and without duplicates.
    pub fn checked_permissions(
        self,
        permissions: &[String],
        catalog: &Catalog,
    ) -> Result<Vec<String>, FieldErrors> {
        let mut errors = FieldErrors::default();
        match self {
            Self::ReadOnly | Self::FullAccess if !permissions.is_empty() => {
                errors.add("permissions", "only custom tokens list permissions");
            }
            Self::Custom if permissions.is_empty() => {
                errors.add(
                    "permissions",
                    "a custom token needs at least one permission",
                );
            }
            _ => {}
        }
        for (index, permission) in permissions.iter().enumerate() {
            if Permission::parse(permission).is_none() {
                errors.add(
                    format!("permissions[{index}]"),
                    format!(
                        "`{}` is not of the form resource.action",
                        crate::token::redact_secrets(permission)
                    ),
                );
            } else if catalog.kind_of(permission).is_none() {
                errors.add(
                    format!("permissions[{index}]"),
                    format!(
                        "`{}` is not in the resource catalog",
                        crate::token::redact_secrets(permission)
                    ),
                );
            }
        }
        errors.into_result()?;
        let unique: BTreeSet<&String> = permissions.iter().collect();
        Ok(unique.into_iter().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article() -> Resource {
        Resource {
            name: "article".into(),
            description: String::new(),
            actions: vec![
                Action {
                    name: "find".into(),
                    kind: ActionKind::Read,
                },
                Action {
                    name: "findOne".into(),
                    kind: ActionKind::Read,
                },
                Action {
                    name: "create".into(),
                    kind: ActionKind::Write,
                },
            ],
        }
    }

    #[test]
    fn type_grants_follow_the_catalog() {
        let catalog = Catalog::new([&article()]);
        let custom_list = |p: &str| p == "article.create";
        let table = [
            (TokenType::ReadOnly, "article.find", true),
            (TokenType::ReadOnly, "article.create", false),
            (TokenType::FullAccess, "article.create", true),
            (TokenType::FullAccess, "article.delete", false),
            (TokenType::Custom, "article.create", true),
            (TokenType::Custom, "article.find", false),
            (TokenType::ReadOnly, "unknown.find", false),
        ];
        for (token_type, permission, expected) in table {
            assert_eq!(
                token_type.grants(&custom_list, &catalog, permission),
                expected,
                "{token_type:?} {permission}"
            );
        }
    }

    #[test]
    fn custom_permissions_are_checked_against_the_catalog() {
        let catalog = Catalog::new([&article()]);
        let ok = TokenType::Custom
            .checked_permissions(&["article.find".into(), "article.find".into()], &catalog)
            .unwrap();
        assert_eq!(ok, vec!["article.find".to_owned()]);
        let err = TokenType::Custom
            .checked_permissions(&["article.nope".into(), "bad".into()], &catalog)
            .unwrap_err();
        assert!(err.get("permissions[0]").is_some());
        assert!(err.get("permissions[1]").is_some());
        assert!(
            TokenType::Custom
                .checked_permissions(&[], &catalog)
                .is_err()
        );
        assert!(
            TokenType::ReadOnly
                .checked_permissions(&["article.find".into()], &catalog)
                .is_err()
        );
    }

    #[test]
    fn resource_validation_names_the_field() {
        let mut resource = article();
        resource.name = "9bad".into();
        resource.actions.push(Action {
            name: "find".into(),
            kind: ActionKind::Read,
        });
        let errors = resource.validate().unwrap_err();
        assert!(errors.get("name").is_some());
        assert!(errors.get("actions[3].name").is_some());
    }

    #[test]
    fn name_rule() {
        for ok in ["a", "article", "find_one", "A-b9"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "1a", "_a", "a.b", &"a".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
