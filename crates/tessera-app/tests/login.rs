#![cfg(test)]
//! Sign-in against a real SQLite store: what a failed login costs, how much memory the
//! password checks share, and how the throttle treats the account's owner.

use std::net::IpAddr;
use std::sync::Arc;

use argon2::Params;
use tessera_api_types::{CreateUserRequest, UpdateUserRequest};
use tessera_app::auth::{NewAdmin, Password};
use tessera_app::{AppError, Principal, Settings, SystemClock, Tessera};
use tessera_core::Pepper;

const PASSWORD: &str = "correct horse battery";

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

fn operator() -> Principal {
    Principal::operator("test")
}

async fn admin(app: &Tessera, email: &str) -> String {
    let view = app
        .users()
        .create_admin(
            &operator(),
            NewAdmin {
                email: email.into(),
                name: None,
                role: "super-admin".into(),
                password: Password(PASSWORD.into()),
            },
        )
        .await
        .unwrap();
    view.id.to_string()
}

fn address(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

#[tokio::test]
async fn every_failed_login_costs_one_argon2_check_with_the_default_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    admin(&app, "root@example.com").await;
    let gone = admin(&app, "gone@example.com").await;
    app.users()
        .update(
            &operator(),
            &gone,
            UpdateUserRequest {
                active: Some(false),
                ..UpdateUserRequest::default()
            },
        )
        .await
        .unwrap();
    // Invited without a password: cannot sign in until an admin sets one.
    app.users()
        .create(
            &operator(),
            CreateUserRequest {
                email: "invited@example.com".into(),
                name: None,
                role: "viewer".into(),
                password: None,
            },
        )
        .await
        .unwrap();

    let per_check = Params::DEFAULT.block_count() as u64 * u64::from(Params::DEFAULT.t_cost());
    let attempts = [
        ("root@example.com", "a wrong password", "a wrong password"),
        ("nobody@example.com", PASSWORD, "an unknown email"),
        (
            "invited@example.com",
            PASSWORD,
            "an account without a password",
        ),
        ("invited@example.com", "", "an empty password for it"),
        ("gone@example.com", PASSWORD, "a deactivated account"),
    ];
    for (email, password, case) in attempts {
        let before = app.auth().password_work();
        let outcome = app
            .auth()
            .login(email, &Password(password.into()), address("192.0.2.1"))
            .await;
        assert!(
            matches!(outcome, Err(AppError::Unauthenticated)),
            "{case}: {outcome:?}"
        );
        let after = app.auth().password_work();
        assert_eq!(after.checks - before.checks, 1, "{case}: one argon2 check");
        assert_eq!(
            after.blocks_filled - before.blocks_filled,
            per_check,
            "{case}: with the default parameters"
        );
    }
}

#[tokio::test]
async fn a_burst_of_failed_logins_shares_a_bounded_set_of_argon2_memory() {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    let logins = (0..32).map(|i| {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            app.auth()
                .login(
                    &format!("user{i}@example.com"),
                    &Password("not the password".into()),
                    address(&format!("198.51.100.{i}")),
                )
                .await
        })
    });
    for login in logins {
        let outcome = login.await.unwrap();
        assert!(matches!(outcome, Err(AppError::Unauthenticated)));
    }
    let work = app.auth().password_work();
    assert_eq!(work.checks, 32, "every login ran argon2");
    assert!(
        (1..=4).contains(&work.permits),
        "a few at a time: {}",
        work.permits
    );
    assert!(
        work.buffers_allocated <= work.permits as u64,
        "each running check borrows working memory and gives it back: {work:?}"
    );
}

#[tokio::test]
async fn a_locked_account_still_admits_its_owner_from_an_address_that_has_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    admin(&app, "root@example.com").await;
    let login = |password: &'static str, from: Option<IpAddr>| {
        let app = Arc::clone(&app);
        async move {
            app.auth()
                .login("root@example.com", &Password(password.into()), from)
                .await
        }
    };
    let attacker = address("203.0.113.9");
    for n in 1..=Settings::default().login_failures_per_account {
        let outcome = login("a wrong password", attacker).await;
        assert!(matches!(outcome, Err(AppError::Unauthenticated)), "{n}");
    }
    let locked = login("a wrong password", attacker).await;
    assert!(matches!(locked, Err(AppError::RateLimited { .. })));
    let refused = login(PASSWORD, attacker).await;
    assert!(
        matches!(refused, Err(AppError::RateLimited { .. })),
        "the address that failed waits, even with the right password"
    );
    let refused = login(PASSWORD, None).await;
    assert!(
        matches!(refused, Err(AppError::RateLimited { .. })),
        "without an address nothing vouches for the client"
    );

    let owner = address("192.0.2.10");
    login(PASSWORD, owner)
        .await
        .expect("the owner signs in from an address that has not failed");
    login(PASSWORD, owner)
        .await
        .expect("and again: a success leaves the address clean");
    let still = login("a wrong password", attacker).await;
    assert!(
        matches!(still, Err(AppError::RateLimited { .. })),
        "the owner's sign-in does not reset the attacker's lock"
    );

    // A clean address gets one try at a locked account, however many it sends at once.
    let guesser = address("198.51.100.77");
    let before = app.auth().password_work();
    let burst: Vec<_> = (0..8)
        .map(|_| tokio::spawn(login("another wrong one", guesser)))
        .collect();
    let mut answers = (0, 0);
    for guess in burst {
        match guess.await.unwrap() {
            Err(AppError::Unauthenticated) => answers.0 += 1,
            Err(AppError::RateLimited { .. }) => answers.1 += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(answers, (1, 7));
    assert_eq!(app.auth().password_work().checks - before.checks, 1);
    let refused = login(PASSWORD, guesser).await;
    assert!(
        matches!(refused, Err(AppError::RateLimited { .. })),
        "having failed, it waits like the others"
    );
}

#[tokio::test]
async fn fresh_addresses_past_an_accounts_lock_are_bounded_too() {
    let dir = tempfile::tempdir().unwrap();
    let app = node(&dir).await;
    admin(&app, "root@example.com").await;
    let settings = Settings::default();
    let wrong = Password("a wrong password".into());
    let from = |n: u32| address(&format!("2001:db8:{n:x}::1"));
    // Lock the account from one address.
    for _ in 0..settings.login_failures_per_account {
        let _ = app.auth().login("root@example.com", &wrong, from(0)).await;
    }
    // Every other address gets one guess, but only so many in all.
    let mut guessed = 0;
    for n in 1..=settings.login_failures_per_address * 2 {
        match app.auth().login("root@example.com", &wrong, from(n)).await {
            Err(AppError::Unauthenticated) => guessed += 1,
            Err(AppError::RateLimited { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(guessed, settings.login_failures_per_address);
    let refused = app
        .auth()
        .login("root@example.com", &Password(PASSWORD.into()), from(999))
        .await;
    assert!(
        matches!(refused, Err(AppError::RateLimited { .. })),
        "past that budget the account waits for its window, whoever asks"
    );
}
