//! Forward-auth route rules: which permission (and project) a request to the protected
//! API needs, from its method and path. Configured in `tessera.toml` under
//! `[forward_auth]`, validated once at start-up (an error names the rule), matched on
//! every forward-auth request without allocating.
//!
//! Patterns: `*` matches one path segment, `**` (last segment only) any rest,
//! including nothing; anything else matches itself, case-sensitively. The query string
//! is ignored. The first rule that matches wins; no match falls to the default.
//! A path with `.` or `..` segments, encoded dots or slashes (`%2e`, `%2f`) or a
//! backslash matches no rule and is denied: a gateway that forwards the raw URI must
//! not let `/public/../admin` borrow the rule of `/public/**`.

use serde::Deserialize;

use crate::catalog::Permission;
use crate::validate;

/// What an unmatched route requires. Read from its name only (`deny`,
/// `any-valid-token`): a number must never select a variant by position, as some
/// deserializers would let it, since the second one opens every unmatched route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum DefaultRoute {
    /// Refused (403) whatever the token.
    #[default]
    Deny,
    /// Any valid API token passes.
    AnyValidToken,
}

impl TryFrom<String> for DefaultRoute {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        match name.as_str() {
            "deny" => Ok(Self::Deny),
            "any-valid-token" => Ok(Self::AnyValidToken),
            other => Err(format!(
                "unknown default `{other}`: use `deny` or `any-valid-token`"
            )),
        }
    }
}

/// The `[forward_auth]` table as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthConfig {
    #[serde(default)]
    pub default: DefaultRoute,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// One `[[forward_auth.rules]]` entry as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// HTTP methods, or `["*"]` for any.
    pub methods: Vec<String>,
    pub path: String,
    pub permission: String,
    #[serde(default)]
    pub project: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Rest,
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    /// Upper-case method names; empty: any method.
    methods: Vec<String>,
    segments: Vec<Segment>,
    pub permission: String,
    pub project: Option<String>,
}

/// What a request needs, by the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteDecision<'a> {
    /// A valid token that grants `permission` (and belongs to `project`, if any).
    Require {
        permission: &'a str,
        project: Option<&'a str>,
    },
    /// Any valid API token.
    AnyValidToken,
    /// Nobody.
    Deny,
}

/// The validated rules, in order, and the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteRules {
    default: DefaultRoute,
    rules: Vec<RouteRule>,
}

impl RouteRules {
    /// Validates `config`; the error names the first bad rule and what is wrong.
    pub fn new(config: &ForwardAuthConfig) -> Result<Self, String> {
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                RouteRule::new(rule).map_err(|problem| {
                    format!(
                        "forward_auth.rules[{index}] ({} {}): {problem}",
                        rule.methods.join(","),
                        rule.path
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            default: config.default,
            rules,
        })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn default_route(&self) -> DefaultRoute {
        self.default
    }

    /// Each rule's index and permission.
    pub fn permissions(&self) -> impl Iterator<Item = (usize, &str)> {
        self.rules
            .iter()
            .enumerate()
            .map(|(index, rule)| (index, rule.permission.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// What `method` on `uri` (a path with an optional query string) needs.
    pub fn decide(&self, method: &str, uri: &str) -> RouteDecision<'_> {
        let path = uri.split(['?', '#']).next().unwrap_or_default();
        if !is_plain(path) {
            return RouteDecision::Deny;
        }
        match self.rules.iter().find(|rule| rule.matches(method, path)) {
            Some(rule) => RouteDecision::Require {
                permission: &rule.permission,
                project: rule.project.as_deref(),
            },
            None => match self.default {
                DefaultRoute::Deny => RouteDecision::Deny,
                DefaultRoute::AnyValidToken => RouteDecision::AnyValidToken,
            },
        }
    }
}

/// A path the rules may judge: absolute, without dot segments, encoded dots or
/// slashes, or backslashes.
fn is_plain(path: &str) -> bool {
    // Checked byte by byte, without allocating: this runs on every forward-auth call.
    let encoded_separator = path.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (w[1], w[2].to_ascii_lowercase()),
                (b'2', b'e') | (b'2', b'f') | (b'5', b'c')
            )
    });
    path.starts_with('/')
        && !path.contains('\\')
        && !encoded_separator
        && !path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

impl RouteRule {
    fn new(config: &RuleConfig) -> Result<Self, String> {
        if config.methods.is_empty() {
            return Err("methods is empty; use [\"*\"] for any method".into());
        }
        let methods = if config.methods.iter().any(|m| m == "*") {
            if config.methods.len() > 1 {
                return Err("\"*\" stands alone in methods".into());
            }
            Vec::new()
        } else {
            config
                .methods
                .iter()
                .map(|method| {
                    let upper = method.to_ascii_uppercase();
                    if !upper.is_empty() && upper.bytes().all(|b| b.is_ascii_uppercase()) {
                        Ok(upper)
                    } else {
                        Err(format!("`{method}` is not an HTTP method"))
                    }
                })
                .collect::<Result<_, _>>()?
        };
        let pattern = config.path.as_str();
        if !pattern.starts_with('/') || pattern.contains(['?', '#']) {
            return Err("path must start with `/` and hold no query string".into());
        }
        let parts: Vec<&str> = pattern[1..].split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            segments.push(match *part {
                "**" if index + 1 == parts.len() => Segment::Rest,
                "**" => return Err("`**` may only be the last segment".into()),
                "*" => Segment::One,
                literal if literal.contains('*') => {
                    return Err(format!(
                        "`{literal}`: `*` and `**` stand for whole segments"
                    ));
                }
                "." | ".." => return Err("no `.` or `..` segments".into()),
                // Such a path is denied before any rule is asked: the rule could never
                // match, and would protect nothing it seems to name.
                literal if !is_plain(&format!("/{literal}")) => {
                    return Err(format!(
                        "`{literal}` can never match: paths with a backslash or an \
                         encoded dot or slash (%2e, %2f, %5c) are always denied"
                    ));
                }
                literal => Segment::Literal(literal.to_owned()),
            });
        }
        if Permission::parse(&config.permission).is_none() {
            return Err(format!(
                "permission `{}` is not of the form resource.action",
                config.permission
            ));
        }
        if let Some(project) = &config.project
            && validate::project_slug(project).is_err()
        {
            return Err(format!("project `{project}` is not a project slug"));
        }
        Ok(Self {
            methods,
            segments,
            permission: config.permission.clone(),
            project: config.project.clone(),
        })
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
        {
            return false;
        }
        let mut parts = path[1..].split('/');
        for segment in &self.segments {
            match segment {
                Segment::Rest => return true,
                Segment::One => match parts.next() {
                    Some(part) if !part.is_empty() => {}
                    _ => return false,
                },
                Segment::Literal(literal) => {
                    if parts.next() != Some(literal.as_str()) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(methods: &[&str], path: &str, permission: &str, project: Option<&str>) -> RuleConfig {
        RuleConfig {
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            path: path.to_owned(),
            permission: permission.to_owned(),
            project: project.map(str::to_owned),
        }
    }

    fn rules(default: DefaultRoute) -> RouteRules {
        RouteRules::new(&ForwardAuthConfig {
            default,
            rules: vec![
                rule(&["GET", "head"], "/api/articles/**", "article.find", None),
                rule(&["POST"], "/api/articles", "article.create", Some("shop")),
                rule(&["*"], "/api/articles/*/comments", "comment.manage", None),
                rule(&["DELETE"], "/api/*", "article.delete", None),
            ],
        })
        .unwrap()
    }

    fn require(permission: &str, project: Option<&'static str>) -> RouteDecision<'static> {
        // Leaked only in tests, to compare against borrowed decisions.
        RouteDecision::Require {
            permission: Box::leak(permission.to_owned().into_boxed_str()),
            project,
        }
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let rules = rules(DefaultRoute::Deny);
        let cases = [
            ("GET", "/api/articles", require("article.find", None)),
            ("GET", "/api/articles/", require("article.find", None)),
            (
                "HEAD",
                "/api/articles/42?full=1",
                require("article.find", None),
            ),
            (
                "GET",
                "/api/articles/42/comments",
                require("article.find", None),
            ),
            (
                "post",
                "/api/articles",
                require("article.create", Some("shop")),
            ),
            (
                "PUT",
                "/api/articles/42/comments",
                require("comment.manage", None),
            ),
            ("PUT", "/api/articles//comments", RouteDecision::Deny),
            ("DELETE", "/api/42", require("article.delete", None)),
            ("DELETE", "/api/42/x", RouteDecision::Deny),
            ("POST", "/api/articles/42", RouteDecision::Deny),
            ("GET", "/API/articles", RouteDecision::Deny),
        ];
        for (method, uri, expected) in cases {
            assert_eq!(rules.decide(method, uri), expected, "{method} {uri}");
        }
        let open = super::tests::rules(DefaultRoute::AnyValidToken);
        assert_eq!(open.decide("GET", "/health"), RouteDecision::AnyValidToken);
    }

    #[test]
    fn dot_segments_and_encoded_separators_are_denied() {
        let open = rules(DefaultRoute::AnyValidToken);
        for uri in [
            "/api/articles/../admin",
            "/api/articles/./x",
            "/api/articles/%2e%2e/admin",
            "/api/articles/a%2Fb",
            "/api/articles\\..\\admin",
            "api/articles",
            "",
        ] {
            assert_eq!(open.decide("GET", uri), RouteDecision::Deny, "{uri}");
        }
    }

    #[test]
    fn bad_rules_are_named() {
        let bad = [
            (rule(&[], "/a", "a.b", None), "methods is empty"),
            (rule(&["*", "GET"], "/a", "a.b", None), "stands alone"),
            (rule(&["GE T"], "/a", "a.b", None), "not an HTTP method"),
            (rule(&["GET"], "a", "a.b", None), "must start with"),
            (rule(&["GET"], "/a?x", "a.b", None), "query string"),
            (rule(&["GET"], "/**/a", "a.b", None), "last segment"),
            (rule(&["GET"], "/a*", "a.b", None), "whole segments"),
            (rule(&["GET"], "/a/../b", "a.b", None), "segments"),
            // Found by the `route_rules` fuzz target: accepted, yet never matched.
            (rule(&["GET"], "/api/artic%2f", "a.b", None), "never match"),
            (rule(&["GET"], "/a/%2E%2E/b", "a.b", None), "never match"),
            (rule(&["GET"], "/a\\b", "a.b", None), "never match"),
            (rule(&["GET"], "/a", "ab", None), "resource.action"),
            (rule(&["GET"], "/a", "a.b", Some("Shop")), "project slug"),
        ];
        for (config, problem) in bad {
            let error = RouteRules::new(&ForwardAuthConfig {
                default: DefaultRoute::Deny,
                rules: vec![rule(&["GET"], "/ok", "a.b", None), config],
            })
            .unwrap_err();
            assert!(
                error.starts_with("forward_auth.rules[1]") && error.contains(problem),
                "{error}"
            );
        }
    }

    #[test]
    fn the_table_deserializes_from_the_config_file_shape() {
        let config: ForwardAuthConfig = from_json(
            r#"{"default":"any-valid-token","rules":[{"methods":["GET"],"path":"/a/**","permission":"a.find"}]}"#,
        );
        let rules = RouteRules::new(&config).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules.decide("GET", "/b"), RouteDecision::AnyValidToken);
    }

    fn from_json(json: &str) -> ForwardAuthConfig {
        serde_json::from_str(json).unwrap()
    }
}
