//! Slow and idle clients: a connection that sends half its headers, or nothing, is
//! closed after the header timeout; an idle keep-alive connection has its own, longer
//! timeout; connections beyond the cap wait to be accepted; and verification keeps
//! answering while a thousand slow connections are held open.
//!
//! Bounds on time are generous (a shared 2-core machine): a timeout is checked to have
//! closed a connection well within a multiple of itself, and not before it was due.

use std::time::{Duration, Instant};

use serde_json::json;
use tessera_server::ConnectionOptions;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::harness::TestServer;

/// How long past its due time a timeout may take to close a connection here.
const SLACK: Duration = Duration::from_secs(15);

fn address(server: &TestServer) -> String {
    server
        .base
        .strip_prefix("http://")
        .expect("http base")
        .to_owned()
}

/// Reads (discarding) until the server closes the connection (end of stream or a
/// reset), for at most `bound`; answers how long that took, or `None` if it stayed
/// open.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buffer = [0_u8; 4096];
    loop {
        let remaining = bound.checked_sub(start.elapsed())?;
        match tokio::time::timeout(remaining, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// One response to a request already sent: reads the head and a `Content-Length`
/// body; `None` if nothing complete arrives within `bound`.
async fn read_response(stream: &mut TcpStream, bound: Duration) -> Option<String> {
    let read = async {
        let mut received = Vec::new();
        let mut buffer = [0_u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.ok()?;
            if n == 0 {
                return None;
            }
            received.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if received.len() >= end + 4 + length {
                    return Some(text);
                }
            }
        }
    };
    tokio::time::timeout(bound, read).await.ok().flatten()
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: tessera\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_or_silence_are_cut_off_after_the_header_timeout() {
    let header_timeout = Duration::from_secs(1);
    let server = TestServer::start_with_connections(ConnectionOptions {
        header_timeout,
        keep_alive: Some(Duration::from_secs(60)),
        ..ConnectionOptions::default()
    })
    .await;
    let address = address(&server);

    let start = Instant::now();
    // Half a request line; half the headers; nothing at all.
    let mut half_line = TcpStream::connect(&address).await.expect("connect");
    half_line.write_all(b"POST /v1/ver").await.expect("write");
    let mut half_headers = TcpStream::connect(&address).await.expect("connect");
    half_headers
        .write_all(b"POST /v1/verify HTTP/1.1\r\nHost: tessera\r\nContent-Ty")
        .await
        .expect("write");
    let mut silent = TcpStream::connect(&address).await.expect("connect");
    // A slowloris: a byte of headers every 200 ms, for ever if allowed.
    let mut trickle = TcpStream::connect(&address).await.expect("connect");
    trickle
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .expect("write");
    let trickled = tokio::spawn(async move {
        let start = Instant::now();
        let mut buffer = [0_u8; 64];
        while start.elapsed() < SLACK {
            if trickle.write_all(b"X").await.is_err() {
                return Some(start.elapsed());
            }
            let read = tokio::time::timeout(Duration::from_millis(200), trickle.read(&mut buffer));
            if let Ok(Ok(0) | Err(_)) = read.await {
                return Some(start.elapsed());
            }
        }
        None
    });

    for (what, stream) in [
        ("half a request line", &mut half_line),
        ("half the headers", &mut half_headers),
        ("nothing", &mut silent),
    ] {
        let closed = closed_within(stream, header_timeout + SLACK).await;
        assert!(
            closed.is_some(),
            "a connection that sent {what} is still open after {:?}",
            header_timeout + SLACK
        );
        assert!(
            start.elapsed() >= header_timeout.mul_f64(0.9),
            "a connection that sent {what} was closed before its header timeout"
        );
    }
    let trickled = trickled.await.expect("trickle task");
    assert!(
        trickled.is_some_and(|after| after >= header_timeout.mul_f64(0.9)),
        "a connection trickling its headers was not closed at its header timeout: {trickled:?}"
    );

    // The server is none the worse for it.
    let mut client = TcpStream::connect(&address).await.expect("connect");
    client.write_all(HEALTHZ).await.expect("write");
    let response = read_response(&mut client, SLACK).await.expect("a response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_has_its_own_longer_timeout() {
    let header_timeout = Duration::from_secs(1);
    let keep_alive = Duration::from_secs(4);
    let server = TestServer::start_with_connections(ConnectionOptions {
        header_timeout,
        keep_alive: Some(keep_alive),
        ..ConnectionOptions::default()
    })
    .await;
    let mut client = TcpStream::connect(address(&server)).await.expect("connect");
    client.write_all(HEALTHZ).await.expect("write");
    let response = read_response(&mut client, SLACK).await.expect("a response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // Idle for twice the header timeout: still open, and it serves the next request.
    tokio::time::sleep(header_timeout * 2).await;
    client.write_all(HEALTHZ).await.expect("write");
    let response = read_response(&mut client, SLACK)
        .await
        .expect("the idle connection to serve a second request");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // Then idle past the keep-alive timeout: closed.
    let closed = closed_within(&mut client, keep_alive + SLACK).await;
    assert!(
        closed.is_some_and(|after| after >= keep_alive.mul_f64(0.75)),
        "an idle connection should close at its keep-alive timeout ({keep_alive:?}): {closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let cap = 8;
    let server = TestServer::start_with_connections(ConnectionOptions {
        header_timeout: Duration::from_secs(60),
        keep_alive: Some(Duration::from_secs(60)),
        max_connections: cap,
    })
    .await;
    let address = address(&server);
    // The harness's own client may hold a keep-alive connection: fill every slot
    // with ours, each proven accepted by an answer.
    let mut held = Vec::new();
    while held.len() < cap {
        let mut stream = TcpStream::connect(&address).await.expect("connect");
        stream.write_all(HEALTHZ).await.expect("write");
        if read_response(&mut stream, Duration::from_secs(2))
            .await
            .is_none()
        {
            // Not accepted: every slot is taken (some by the harness's client).
            break;
        }
        held.push(stream);
    }
    assert!(!held.is_empty(), "no connection was accepted");

    let mut waiting = TcpStream::connect(&address).await.expect("connect");
    waiting.write_all(HEALTHZ).await.expect("write");
    assert!(
        read_response(&mut waiting, Duration::from_secs(1))
            .await
            .is_none(),
        "a connection beyond the cap of {cap} was served"
    );
    held.pop();
    let response = read_response(&mut waiting, SLACK)
        .await
        .expect("the waiting connection to be served once a slot is free");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

/// Slow connections the verify test holds. Each costs two file descriptors in this
/// process (the test's end and the server's).
const SLOW_CONNECTIONS: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_keeps_answering_while_a_thousand_slow_connections_are_held() {
    // Two descriptors per connection plus the rest of the test process.
    let needed = 2 * SLOW_CONNECTIONS as u64 + 256;
    let limit = tessera_server::raise_open_files_limit();
    let count = match limit {
        Some(limit) if limit < needed => {
            // Fewer connections rather than a failure the server is not to blame for.
            let fewer = usize::try_from((limit.saturating_sub(256)) / 2).unwrap_or(0);
            eprintln!(
                "open-files limit {limit} < {needed}: holding {fewer} slow connections, not {SLOW_CONNECTIONS}"
            );
            fewer
        }
        _ => SLOW_CONNECTIONS,
    };
    // The header timeout outlasts the test: every slow connection stays held.
    let server = TestServer::start_with_connections(ConnectionOptions {
        header_timeout: Duration::from_secs(120),
        ..ConnectionOptions::default()
    })
    .await;
    let admin = server.admin("super-admin").await;
    let (_, secret) = admin.token("gateway").await;
    let address = address(&server);

    let mut slow = Vec::with_capacity(count);
    for i in 0..count {
        let mut stream = TcpStream::connect(&address).await.expect("connect");
        let partial: &[u8] = match i % 3 {
            0 => b"POST /v1/verify HTT",
            1 => b"POST /v1/verify HTTP/1.1\r\nHost: tessera\r\nContent-Le",
            _ => b"",
        };
        stream.write_all(partial).await.expect("write");
        slow.push(stream);
    }

    // Every verification on a new connection of its own, each answered.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    for _ in 0..20 {
        let response = client
            .post(server.url("/v1/verify"))
            .json(&json!({ "token": secret }))
            .send()
            .await
            .expect("verify answers while slow connections are held");
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["valid"], true, "{body}");
    }

    // And the slow connections were held all along (none closed by the server).
    let mut buffer = [0_u8; 16];
    let open = slow
        .iter()
        .filter(|stream| {
            matches!(stream.try_read(&mut buffer), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count();
    assert_eq!(open, count, "slow connections closed before their timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_in_is_cut_off_at_the_body_timeout() {
    let server = TestServer::start().await;
    let mut client = TcpStream::connect(address(&server)).await.expect("connect");
    client
        .write_all(
            b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 4096\r\n\r\n{\"token\":\"",
        )
        .await
        .expect("write head");
    let started = Instant::now();
    // A byte every second: never idle long enough for any per-read timeout.
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if client.write_all(b"a").await.is_err() {
                break;
            }
        }
    };
    let limit = tessera_server::extract::BODY_TIMEOUT + SLACK;
    let _ = tokio::time::timeout(limit, trickle).await;
    let took = started.elapsed();
    assert!(
        took < limit,
        "the server should stop reading a trickling body after {:?}; still open after {took:?}",
        tessera_server::extract::BODY_TIMEOUT
    );
    assert!(
        took >= tessera_server::extract::BODY_TIMEOUT.mul_f64(0.9),
        "cut off early: {took:?}"
    );
}
