//! Route rules from text: forward-auth's `[forward_auth]` table, parsed and validated by
//! `tessera-core` exactly as `tessera serve` does.

use tessera_core::route_rules::{ForwardAuthConfig, RouteRules};

/// Reading [`RouteRules`] from the TOML of a `[forward_auth]` table.
pub trait RouteRulesExt: Sized {
    /// Parses the body of a `[forward_auth]` table (`default = …` and
    /// `[[rules]]` entries); the error names the bad rule.
    fn from_toml(text: &str) -> Result<Self, String>;
}

impl RouteRulesExt for RouteRules {
    fn from_toml(text: &str) -> Result<Self, String> {
        let config: ForwardAuthConfig =
            toml::from_str(text).map_err(|error| format!("route rules: {error}"))?;
        RouteRules::new(&config)
    }
}
