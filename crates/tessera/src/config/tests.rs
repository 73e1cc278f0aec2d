//! The configuration's layering, defaults, parsing and errors.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// With nothing configured, the application runs on its own defaults: the file's
/// defaults are those, converted, not a second copy that could drift.
#[test]
fn the_defaults_are_the_applications() {
    let (config, _) = Config::from_sources(None, &Overrides::default(), &[]).unwrap();
    let settings = config.settings().unwrap();
    let app = tessera_app::Settings::default();
    assert_eq!(settings.session_lifetime, app.session_lifetime);
    assert_eq!(
        settings.verify_failures_per_address,
        app.verify_failures_per_address
    );
    assert_eq!(settings.max_staleness, app.max_staleness);
    assert_eq!(settings.change_feed_retention, app.change_feed_retention);
    assert_eq!(settings.api_versions.all(), app.api_versions.all());
    assert_eq!(
        settings
            .token_format
            .prefix_for(tessera_core::TokenKind::Api),
        app.token_format.prefix_for(tessera_core::TokenKind::Api)
    );
    let intervals = tessera_app::background::Intervals::default();
    assert_eq!(
        Duration::from_secs(config.usage_flush_seconds),
        intervals.flush
    );
    assert_eq!(
        Duration::from_millis(config.change_poll_milliseconds),
        intervals.follow
    );
}

/// Variables are text: each is read as its key's type, lists split at commas.
#[test]
fn variables_are_read_as_their_keys_types() {
    let (config, warnings) = Config::from_sources(
        None,
        &Overrides::default(),
        &env(&[
            ("TESSERA_LISTEN", "9090"),
            ("TESSERA_API_VERSIONS", "v1, v2,v3"),
            ("TESSERA_SECURE_COOKIES", "true"),
            ("TESSERA_MAX_CONNECTIONS", "64"),
            ("TESSERA_DATABASE_URL", ""),
            ("TESSERA_TEST_ANYTHING", "ignored quietly"),
        ]),
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.listen.port(), 9090);
    assert_eq!(config.api_versions, vec!["v1", "v2", "v3"]);
    assert!(config.secure_cookies);
    assert_eq!(config.max_connections, 64);
    assert_eq!(config.database_url, None, "empty is unset");
    let error = Config::from_sources(
        None,
        &Overrides::default(),
        &env(&[("TESSERA_MAX_CONNECTIONS", "many")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("environment variable TESSERA_MAX_CONNECTIONS:"),
        "{error}"
    );
    // A table is set in the file only: its would-be variable is unknown.
    let (_, warnings) = Config::from_sources(
        None,
        &Overrides::default(),
        &env(&[("TESSERA_FORWARD_AUTH", "x")]),
    )
    .unwrap();
    assert_eq!(
        warnings,
        vec!["ignoring unknown environment variable TESSERA_FORWARD_AUTH"]
    );
}

#[test]
fn the_log_format_flag_wins_over_the_environment() {
    let overrides = Overrides {
        log_format: Some(LogFormat::Json),
        ..Overrides::default()
    };
    let (config, _) = Config::load(&overrides, &env(&[("TESSERA_LOG_FORMAT", "text")])).unwrap();
    assert_eq!(config.log_format, LogFormat::Json);
    let (config, _) = Config::load(
        &Overrides::default(),
        &env(&[("TESSERA_LOG_FORMAT", "json")]),
    )
    .unwrap();
    assert_eq!(config.log_format, LogFormat::Json);
}

#[test]
fn trusted_proxies_come_from_file_or_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(&file, "trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]\n").unwrap();
    let overrides = Overrides {
        config: Some(file.clone()),
        ..Overrides::default()
    };
    let (config, _) = Config::load(&overrides, &[]).unwrap();
    assert_eq!(config.trusted_proxies.len(), 2);
    assert!(config.trusted_proxies[1].contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap()));
    let (config, _) =
        Config::load(&overrides, &env(&[("TESSERA_TRUSTED_PROXIES", "::1/128")])).unwrap();
    assert_eq!(config.trusted_proxies.len(), 1);
    let error = Config::load(
        &overrides,
        &env(&[("TESSERA_TRUSTED_PROXIES", "10.0.0.0/33")]),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("10.0.0.0/33"), "{error}");
}

#[test]
fn forward_auth_rules_load_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(
        &file,
        "[forward_auth]\ndefault = \"any-valid-token\"\n\
         [[forward_auth.rules]]\nmethods = [\"GET\"]\npath = \"/api/**\"\npermission = \"article.find\"\n",
    )
    .unwrap();
    let overrides = Overrides {
        config: Some(file.clone()),
        ..Overrides::default()
    };
    let (config, _) = Config::load(&overrides, &[]).unwrap();
    let rules = config.settings().unwrap().forward_auth;
    assert_eq!(rules.len(), 1);
    std::fs::write(
        &file,
        "[[forward_auth.rules]]\nmethods = [\"GET\"]\npath = \"/api/**/x\"\npermission = \"article.find\"\n",
    )
    .unwrap();
    let error = Config::load(&overrides, &[]).unwrap_err().to_string();
    assert!(
        error.contains("forward_auth.rules[0]") && error.contains("last segment"),
        "{error}"
    );
}

#[test]
fn layers_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9000\"\ndata_dir = \"/from-file\"\napi_versions = [\"v1\", \"v2\"]\n",
    )
    .unwrap();
    let overrides = Overrides {
        config: Some(file.clone()),
        ..Overrides::default()
    };
    let (config, _) = Config::load(&overrides, &env(&[("TESSERA_DATA_DIR", "/from-env")])).unwrap();
    assert_eq!(config.listen.port(), 9000, "file beats default");
    assert_eq!(
        config.data_dir,
        PathBuf::from("/from-env"),
        "env beats file"
    );
    assert_eq!(config.api_versions, vec!["v1", "v2"]);
    let overrides = Overrides {
        config: Some(file),
        data_dir: Some("/from-flag".into()),
        ..Overrides::default()
    };
    let (config, _) = Config::load(&overrides, &env(&[("TESSERA_DATA_DIR", "/from-env")])).unwrap();
    assert_eq!(
        config.data_dir,
        PathBuf::from("/from-flag"),
        "flag beats env"
    );
}

#[test]
fn unknown_env_is_warned_and_unknown_keys_fail() {
    let (_, warnings) =
        Config::load(&Overrides::default(), &env(&[("TESSERA_LISTN", "x")])).unwrap();
    assert_eq!(
        warnings,
        vec!["ignoring unknown environment variable TESSERA_LISTN"]
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(&file, "lisen = \"x\"\n").unwrap();
    let overrides = Overrides {
        config: Some(file),
        ..Overrides::default()
    };
    let error = Config::load(&overrides, &[]).unwrap_err();
    assert!(format!("{error:#}").contains("lisen"), "{error:#}");
}

#[test]
fn max_staleness_defaults_to_five_minutes_and_zero_means_never() {
    let (config, _) = Config::load(&Overrides::default(), &[]).unwrap();
    assert_eq!(config.max_staleness_seconds, 300);
    assert_eq!(
        config.settings().unwrap().max_staleness,
        Some(Duration::from_secs(300))
    );
    let (config, warnings) = Config::load(
        &Overrides::default(),
        &env(&[("TESSERA_MAX_STALENESS_SECONDS", "0")]),
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.settings().unwrap().max_staleness, None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(&file, "max_staleness_seconds = 60\n").unwrap();
    let overrides = Overrides {
        config: Some(file),
        ..Overrides::default()
    };
    let (config, _) = Config::load(&overrides, &[]).unwrap();
    assert_eq!(
        config.settings().unwrap().max_staleness,
        Some(Duration::from_secs(60))
    );
    let error = Config::load(
        &Overrides::default(),
        &env(&[("TESSERA_MAX_STALENESS_SECONDS", "-1")]),
    )
    .unwrap_err();
    assert!(error.to_string().contains("TESSERA_MAX_STALENESS_SECONDS"));
}

#[test]
fn change_feed_retention_defaults_to_seven_days_and_zero_means_forever() {
    let (config, _) = Config::load(&Overrides::default(), &[]).unwrap();
    assert_eq!(config.change_feed_retention_hours, 168);
    assert_eq!(
        config.settings().unwrap().change_feed_retention,
        Some(Duration::from_secs(7 * 24 * 3600))
    );
    let (config, warnings) = Config::load(
        &Overrides::default(),
        &env(&[("TESSERA_CHANGE_FEED_RETENTION_HOURS", "0")]),
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.settings().unwrap().change_feed_retention, None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(&file, "change_feed_retention_hours = 48\n").unwrap();
    let overrides = Overrides {
        config: Some(file),
        ..Overrides::default()
    };
    let (config, _) = Config::load(&overrides, &[]).unwrap();
    assert_eq!(
        config.settings().unwrap().change_feed_retention,
        Some(Duration::from_secs(48 * 3600))
    );
    let error = Config::load(
        &Overrides::default(),
        &env(&[("TESSERA_CHANGE_FEED_RETENTION_HOURS", "7d")]),
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("TESSERA_CHANGE_FEED_RETENTION_HOURS")
    );
    let error = Config::load(
        &Overrides::default(),
        &env(&[("TESSERA_CHANGE_FEED_RETENTION_HOURS", "1000000")]),
    )
    .unwrap_err();
    assert!(error.to_string().contains("change_feed_retention_hours"));
}

#[test]
fn the_pepper_file_comes_from_file_environment_or_flag() {
    let (config, _) = Config::load(&Overrides::default(), &[]).unwrap();
    assert_eq!(config.pepper_path(), PathBuf::from("./tessera-data/pepper"));
    assert_eq!(config.data_dir_origin, Origin::Default);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(
        &file,
        "pepper_file = \"/run/secrets/pepper\"\ndata_dir = \"/srv/t\"\n",
    )
    .unwrap();
    let overrides = Overrides {
        config: Some(file.clone()),
        ..Overrides::default()
    };
    let (config, _) = Config::load(&overrides, &[]).unwrap();
    assert_eq!(config.pepper_path(), PathBuf::from("/run/secrets/pepper"));
    assert_eq!(config.data_dir_origin, Origin::File(file.clone()));
    let (config, warnings) = Config::load(
        &overrides,
        &env(&[
            ("TESSERA_PEPPER_FILE", "/from-env"),
            ("TESSERA_DATA_DIR", "/d"),
        ]),
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.pepper_path(), PathBuf::from("/from-env"));
    assert_eq!(config.data_dir_origin, Origin::Environment);
    let overrides = Overrides {
        config: Some(file),
        pepper_file: Some("/from-flag".into()),
        data_dir: Some("/flag".into()),
        ..Overrides::default()
    };
    let (config, _) =
        Config::load(&overrides, &env(&[("TESSERA_PEPPER_FILE", "/from-env")])).unwrap();
    assert_eq!(config.pepper_path(), PathBuf::from("/from-flag"));
    assert_eq!(config.data_dir_origin, Origin::Flag);
}

/// docs/configuration.md names every variable Tessera reads (and with it every
/// key: each key has its variable).
#[test]
fn the_configuration_reference_names_every_variable() {
    let reference = include_str!("../../../../docs/configuration.md");
    for variable in known_env() {
        assert!(
            reference.contains(&format!("`{variable}`")),
            "docs/configuration.md does not name {variable}"
        );
        if let Some(key) = variable.strip_prefix("TESSERA_")
            && !matches!(variable.as_str(), "TESSERA_CONFIG" | "TESSERA_LOG")
        {
            let key = format!("`{}`", key.to_lowercase());
            assert!(
                reference.contains(&key),
                "docs/configuration.md lacks {key}"
            );
        }
    }
}

#[test]
fn bad_values_name_their_source() {
    let error = Config::load(
        &Overrides::default(),
        &env(&[("TESSERA_LISTEN", "nowhere")]),
    )
    .unwrap_err();
    assert!(error.to_string().contains("TESSERA_LISTEN"));
    let error = Config::load(
        &Overrides::default(),
        &env(&[("TESSERA_TOKEN_PREFIX", "Bad")]),
    )
    .unwrap_err();
    assert!(error.to_string().contains("prefix"));
}

/// A number where a name belongs is refused, never read as the n-th choice: `default = 1`
/// would otherwise open every unmatched route to any valid token.
#[test]
fn names_are_not_numbers() {
    let path = Path::new("tessera.toml");
    for text in [
        "[forward_auth]\ndefault = 1\n",
        "log_format = 1\n",
        "[forward_auth]\ndefault = \"allow\"\n",
    ] {
        let error = Config::from_sources(Some((path, text)), &Overrides::default(), &[])
            .expect_err(text)
            .to_string();
        assert!(error.contains("is not valid"), "{text}: {error}");
    }
    let (config, _) = Config::from_sources(
        Some((
            path,
            "log_format = \"json\"\n[forward_auth]\ndefault = \"any-valid-token\"\n",
        )),
        &Overrides::default(),
        &[],
    )
    .unwrap();
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(
        config.forward_auth.default,
        tessera_core::DefaultRoute::AnyValidToken
    );
}
