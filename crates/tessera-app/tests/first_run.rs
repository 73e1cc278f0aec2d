#![cfg(test)]
//! First run: the one-time setup code that `register_first` asks for, its file, its
//! reuse across restarts, its retirement, and the throttling of wrong guesses.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tessera_app::auth::{NewAdmin, Password};
use tessera_app::first_run::SETUP_CODE_FILE;
use tessera_app::{AppError, Principal, Settings, SystemClock, Tessera};
use tessera_core::Pepper;

const PASSWORD: &str = "correct horse battery";

/// A node over the data dir `dir` (a second call is a restart of the same server).
async fn node(dir: &tempfile::TempDir) -> Arc<Tessera> {
    let store = tessera_store::open(&tessera_store::sqlite_url_in(dir.path()))
        .await
        .unwrap();
    let app = Tessera::new(
        store,
        Pepper::from_bytes([9; 32]),
        Settings::default(),
        Arc::new(SystemClock),
    )
    .expect("app");
    app.load().await.unwrap();
    Arc::new(app)
}

fn code_file(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join(SETUP_CODE_FILE)
}

fn client(address: &str) -> Option<IpAddr> {
    Some(address.parse().unwrap())
}

async fn register(
    app: &Tessera,
    code: &str,
    email: &str,
    from: Option<IpAddr>,
) -> Result<(), AppError> {
    app.auth()
        .register_first(code, email.into(), None, Password(PASSWORD.into()), from)
        .await
        .map(|(_, response)| assert_eq!(response.user.role, "super-admin"))
}

/// Asserts a 422 naming `setup_code`, and answers its message.
#[track_caller]
fn refused_code(result: Result<(), AppError>) -> String {
    match result {
        Err(AppError::Validation(error)) => error
            .0
            .get("setup_code")
            .unwrap_or_else(|| panic!("no setup_code in {error:?}"))
            .to_owned(),
        other => panic!("expected a setup_code validation error, got {other:?}"),
    }
}

/// A code other than `code`, in the same shape (its last symbol changed).
fn other_than(code: &str) -> String {
    let mut wrong = code.to_owned();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'Z' { 'Y' } else { 'Z' });
    wrong
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_code_is_armed_written_privately_and_works_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    assert!(app.auth().needs_first_admin().await.unwrap());
    let code = app
        .auth()
        .prepare_first_run(&code_file(&dir))
        .await
        .unwrap()
        .expect("a code while no admin exists");
    // ABCD-EFGH-JKMN-PQRS: 16 Crockford symbols, 80 bits.
    assert_eq!(code.len(), 19, "{code}");
    assert!(
        code.split('-').all(|group| group.len() == 4
            && group
                .bytes()
                .all(|b| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b))),
        "{code}"
    );
    assert_eq!(
        std::fs::read_to_string(code_file(&dir)).unwrap().trim(),
        code
    );
    #[cfg(unix)]
    assert_eq!(mode(&code_file(&dir)), 0o600);
    // The Tessera struct holds the code, but never prints it.
    assert!(!format!("{app:?}").contains(&code));

    let message = refused_code(register(&app, &other_than(&code), "a@example.com", None).await);
    assert!(message.contains("does not match"), "{message}");
    refused_code(register(&app, "", "a@example.com", None).await);
    assert!(
        app.auth().needs_first_admin().await.unwrap(),
        "a refused code creates nobody"
    );

    register(&app, &code, "first@example.com", None)
        .await
        .unwrap();
    assert!(!app.auth().needs_first_admin().await.unwrap());
    assert!(!code_file(&dir).exists(), "the file goes with the code");
    // Only once: the conflict stands whatever code comes with it.
    for presented in [code.as_str(), "", "nonsense"] {
        assert!(matches!(
            register(&app, presented, "second@example.com", None).await,
            Err(AppError::Conflict(_))
        ));
    }
    // The signed-up admin signs in.
    app.auth()
        .login("first@example.com", &Password(PASSWORD.into()), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn without_an_armed_code_registration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    // A code in the file but not armed in this process (e.g. another node's) opens
    // nothing here.
    std::fs::write(code_file(&dir), "ABCD-EFGH-JKMN-PQRS\n").unwrap();
    let message = refused_code(register(&app, "ABCD-EFGH-JKMN-PQRS", "a@example.com", None).await);
    assert!(
        message.contains("no setup code is active") && message.contains("tessera admin create"),
        "{message}"
    );
    assert!(app.auth().needs_first_admin().await.unwrap());
}

#[tokio::test]
async fn the_typed_code_is_normalized() {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    let code = app
        .auth()
        .prepare_first_run(&code_file(&dir))
        .await
        .unwrap()
        .unwrap();
    // Lower case, spaces instead of dashes, surrounding blanks: still the code.
    let typed = format!("  {}\t\n", code.to_lowercase().replace('-', " "));
    register(&app, &typed, "first@example.com", None)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_restart_reuses_the_code_in_the_file_and_replaces_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let first = node(&dir)
        .await
        .auth()
        .prepare_first_run(&code_file(&dir))
        .await
        .unwrap()
        .unwrap();
    // A restart: a new process over the same data dir keeps the copied code valid.
    let app = node(&dir).await;
    let again = app
        .auth()
        .prepare_first_run(&code_file(&dir))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, again);

    // A malformed file is replaced by a fresh, private code.
    std::fs::write(code_file(&dir), "not a code\n").unwrap();
    let replaced = app
        .auth()
        .prepare_first_run(&code_file(&dir))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(replaced, first);
    assert_eq!(
        std::fs::read_to_string(code_file(&dir)).unwrap().trim(),
        replaced
    );
    #[cfg(unix)]
    assert_eq!(mode(&code_file(&dir)), 0o600);
    // The armed code is the new one.
    refused_code(register(&app, &first, "a@example.com", None).await);

    // A file others could read is not trusted either: replaced.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(code_file(&dir), std::fs::Permissions::from_mode(0o644)).unwrap();
        let fresh = app
            .auth()
            .prepare_first_run(&code_file(&dir))
            .await
            .unwrap()
            .unwrap();
        assert_ne!(fresh, replaced);
        assert_eq!(mode(&code_file(&dir)), 0o600);
    }
    let armed = app
        .auth()
        .prepare_first_run(&code_file(&dir))
        .await
        .unwrap()
        .unwrap();
    register(&app, &armed, "first@example.com", None)
        .await
        .unwrap();
}

#[tokio::test]
async fn once_an_admin_exists_nothing_is_armed_and_a_leftover_file_goes() {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    let code = app
        .auth()
        .prepare_first_run(&code_file(&dir))
        .await
        .unwrap()
        .unwrap();
    // `tessera admin create` needs no code.
    app.users()
        .create_admin(
            &Principal::operator("test"),
            NewAdmin {
                email: "root@example.com".into(),
                name: None,
                role: "super-admin".into(),
                password: Password(PASSWORD.into()),
            },
        )
        .await
        .unwrap();
    assert!(!app.auth().needs_first_admin().await.unwrap());
    assert!(matches!(
        register(&app, &code, "intruder@example.com", None).await,
        Err(AppError::Conflict(_))
    ));
    assert!(code_file(&dir).exists(), "left over from before the admin");

    let restarted = node(&dir).await;
    assert_eq!(
        restarted
            .auth()
            .prepare_first_run(&code_file(&dir))
            .await
            .unwrap(),
        None
    );
    assert!(!code_file(&dir).exists(), "the leftover file is removed");
    assert!(matches!(
        register(&restarted, &code, "intruder@example.com", None).await,
        Err(AppError::Conflict(_))
    ));
}

#[tokio::test]
async fn wrong_codes_are_throttled_per_address_like_logins() {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    let code = app
        .auth()
        .prepare_first_run(&code_file(&dir))
        .await
        .unwrap()
        .unwrap();
    let budget = Settings::default().login_failures_per_address;
    let guesser = client("192.0.2.7");
    for _ in 0..budget {
        refused_code(register(&app, &other_than(&code), "a@example.com", guesser).await);
    }
    for presented in [other_than(&code), code.clone()] {
        match register(&app, &presented, "a@example.com", guesser).await {
            Err(AppError::RateLimited { retry_after }) => assert!(retry_after.as_secs() > 0),
            other => panic!("expected RateLimited, got {other:?}"),
        }
    }
    // The guesses also count against logins from that address.
    assert!(matches!(
        app.auth()
            .login("a@example.com", &Password(PASSWORD.into()), guesser)
            .await,
        Err(AppError::RateLimited { .. })
    ));
    // Another address is not held back, and a right code is not counted: a bad
    // password with the right code leaves the code armed.
    let owner = client("198.51.100.2");
    let refused = app
        .auth()
        .register_first(
            &code,
            "first@example.com".into(),
            None,
            Password("short".into()),
            owner,
        )
        .await;
    assert!(matches!(refused, Err(AppError::Validation(_))));
    register(&app, &code, "first@example.com", owner)
        .await
        .unwrap();
}
