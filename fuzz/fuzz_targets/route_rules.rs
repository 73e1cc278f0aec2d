//! Forward-auth route rules (`tessera-core/src/route_rules.rs`).
//!
//! Input: text, one item a line, fields separated by tabs:
//! - `default<TAB>any-valid-token` (anything else: deny);
//! - `rule<TAB>METHODS<TAB>PATH<TAB>PERMISSION[<TAB>PROJECT]`, methods comma-separated;
//! - `request<TAB>METHOD<TAB>URI`.
//!
//! Checked against a reference written here independently:
//! - `RouteRules::new` accepts exactly the rules the reference finds valid (one that
//!   no request could match is not), and a refusal names the first bad rule;
//! - `decide` never panics and answers what the reference matcher answers (paths with
//!   dot segments, encoded dots or slashes and backslashes denied; first matching rule
//!   wins; `*` one non-empty segment, `**` the rest; methods case-insensitive), for
//!   every request of the input and a request built to match each rule;
//! - the query string and fragment are ignored, the method's case does not matter;
//! - no accepted rule is dead: some request always reaches it (or an earlier rule).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::{DefaultRoute, ForwardAuthConfig, RouteDecision, RouteRules, RuleConfig};

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn valid_slug(slug: &str) -> bool {
    let mut chars = slug.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && slug.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The reference's idea of a valid rule.
fn reference_valid(rule: &RuleConfig) -> bool {
    let methods_ok = match rule.methods.as_slice() {
        [] => false,
        [only] if only == "*" => true,
        many => many
            .iter()
            .all(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_alphabetic())),
    };
    let segments: Vec<&str> = rule.path.get(1..).unwrap_or_default().split('/').collect();
    let path_ok = rule.path.starts_with('/')
        && !rule.path.contains('?')
        && !rule.path.contains('#')
        && segments
            .iter()
            .enumerate()
            .all(|(index, segment)| match *segment {
                "**" => index + 1 == segments.len(),
                "*" => true,
                "." | ".." => false,
                // A segment no plain path holds: the rule could never match.
                literal => !literal.contains('*') && reference_plain(&format!("/{literal}")),
            });
    let permission_ok = rule
        .permission
        .split_once('.')
        .is_some_and(|(resource, action)| valid_name(resource) && valid_name(action));
    let project_ok = rule.project.as_deref().is_none_or(valid_slug);
    methods_ok && path_ok && permission_ok && project_ok
}

/// A path the rules may judge, by the reference.
fn reference_plain(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    path.starts_with('/')
        && !path.contains('\\')
        && !["%2e", "%2f", "%5c"].iter().any(|bad| lower.contains(bad))
        && !path.split('/').any(|s| s == "." || s == "..")
}

fn segments_match(pattern: &[&str], path: &[&str]) -> bool {
    match (pattern.split_first(), path.split_first()) {
        (None, _) => path.is_empty(),
        (Some((&"**", [])), _) => true,
        (Some((&"*", rest)), Some((segment, more))) => {
            !segment.is_empty() && segments_match(rest, more)
        }
        (Some((literal, rest)), Some((segment, more))) => {
            literal == segment && segments_match(rest, more)
        }
        (Some(_), None) => false,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Expected<'a> {
    Require(&'a str, Option<&'a str>),
    Any,
    Deny,
}

fn reference_decide<'a>(config: &'a ForwardAuthConfig, method: &str, uri: &str) -> Expected<'a> {
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    if !reference_plain(path) {
        return Expected::Deny;
    }
    let path_segments: Vec<&str> = path[1..].split('/').collect();
    for rule in &config.rules {
        let method_ok = rule
            .methods
            .iter()
            .any(|m| m == "*" || m.eq_ignore_ascii_case(method));
        let pattern: Vec<&str> = rule.path[1..].split('/').collect();
        if method_ok && segments_match(&pattern, &path_segments) {
            return Expected::Require(&rule.permission, rule.project.as_deref());
        }
    }
    match config.default {
        DefaultRoute::Deny => Expected::Deny,
        DefaultRoute::AnyValidToken => Expected::Any,
    }
}

fn as_expected<'a>(decision: RouteDecision<'a>) -> Expected<'a> {
    match decision {
        RouteDecision::Require {
            permission,
            project,
        } => Expected::Require(permission, project),
        RouteDecision::AnyValidToken => Expected::Any,
        RouteDecision::Deny => Expected::Deny,
    }
}

fn check(rules: &RouteRules, config: &ForwardAuthConfig, method: &str, uri: &str) {
    let decided = as_expected(rules.decide(method, uri));
    assert_eq!(
        decided,
        reference_decide(config, method, uri),
        "{method} {uri}"
    );
    assert_eq!(
        as_expected(rules.decide(&method.to_ascii_lowercase(), uri)),
        as_expected(rules.decide(&method.to_ascii_uppercase(), uri)),
        "{method} {uri}: the method's case matters"
    );
    if !uri.contains(['?', '#']) {
        assert_eq!(
            as_expected(rules.decide(method, &format!("{uri}?x=..%2f#/../"))),
            decided,
            "{method} {uri}: the query string matters"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let text = tessera_fuzz::text(data);
    let mut config = ForwardAuthConfig::default();
    let mut requests = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["default", value] => {
                config.default = if *value == "any-valid-token" {
                    DefaultRoute::AnyValidToken
                } else {
                    DefaultRoute::Deny
                };
            }
            ["rule", methods, path, permission, project @ ..] => config.rules.push(RuleConfig {
                methods: methods
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
                path: (*path).to_owned(),
                permission: (*permission).to_owned(),
                project: project.first().map(|p| (*p).to_owned()),
            }),
            ["request", method, uri] => requests.push(((*method).to_owned(), (*uri).to_owned())),
            _ => {}
        }
    }

    let first_bad = config.rules.iter().position(|rule| !reference_valid(rule));
    let rules = match (RouteRules::new(&config), first_bad) {
        (Ok(rules), None) => rules,
        (Err(message), Some(index)) => {
            assert!(
                message.starts_with(&format!("forward_auth.rules[{index}] ")),
                "rule {index} is the first bad one: {message}"
            );
            return;
        }
        (Ok(_), Some(index)) => panic!("rule {index} is accepted: {:?}", config.rules[index]),
        (Err(message), None) => panic!("valid rules refused: {message}"),
    };
    assert_eq!(rules.len(), config.rules.len());

    for (method, uri) in &requests {
        check(&rules, &config, method, uri);
    }
    // A request made for each rule reaches it, or an earlier rule.
    for (index, rule) in config.rules.iter().enumerate() {
        let method = rule
            .methods
            .first()
            .filter(|m| *m != "*")
            .map_or("GET", String::as_str);
        let path: String = rule.path[1..]
            .split('/')
            .filter(|segment| *segment != "**")
            .map(|segment| format!("/{}", if segment == "*" { "x" } else { segment }))
            .collect();
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path
        };
        check(&rules, &config, method, &path);
        let reached = config.rules[..=index].iter().any(|earlier| {
            matches!(
                rules.decide(method, &path),
                RouteDecision::Require { permission, .. } if permission == earlier.permission
            )
        });
        assert!(
            reached,
            "rule {index} ({method} {path}) can never match: {rule:?}"
        );
    }
});
