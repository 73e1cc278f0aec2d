//! Helpers for driving the built `tessera` binary: a sandbox per test (its own temp
//! directory, used as the working directory and holding the data dir), a scrubbed
//! environment (no inherited `TESSERA_*` variables), and a running `serve` child that is
//! killed when dropped.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// A `tessera` command with no inherited `TESSERA_*` variables, run in `cwd` (so that
/// no stray `./tessera.toml` is picked up) with stdin closed.
pub fn bare_command(cwd: &Path) -> Command {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TESSERA_") {
            command.env_remove(&key);
        }
    }
    command.current_dir(cwd).stdin(Stdio::null());
    command
}

/// What a finished command left behind.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    fn from(output: std::process::Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts success.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.expect_code(0)
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| {
            panic!(
                "stdout is not JSON ({error})\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `command`, feeding `stdin` when given.
pub fn run_command(mut command: Command, stdin: Option<&str>) -> Output {
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn tessera");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input.as_bytes()).expect("write stdin");
        // Dropping the pipe closes it: the child sees end of input.
    }
    Output::from(child.wait_with_output().expect("wait for tessera"))
}

/// Runs a command that must exit by itself (a `serve` that must refuse to start):
/// killed, and the test failed, if it still runs after a minute.
pub fn run_exiting(mut command: Command) -> Output {
    use std::io::Read as _;
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn tessera");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            panic!(
                "the command did not exit (a server that should have refused to start?):\n{stderr}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_string(&mut stdout);
    }
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    Output {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// One test's sandbox: a temp dir used as working directory, with the data dir inside.
#[derive(Debug)]
pub struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    /// A sandbox with nothing in it yet: no data dir, no database, no pepper.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }

    /// A sandbox with an installation: `tessera migrate` has created the data dir, the
    /// database and the pepper (only `serve`, `migrate` and `admin create` may).
    #[track_caller]
    pub fn initialized() -> Self {
        let sandbox = Self::new();
        sandbox.run(&["migrate"]).ok();
        sandbox
    }

    /// The sandbox's root (the commands' working directory).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The data dir passed as `--data-dir` (created by `migrate`, `serve` or `admin
    /// create`; see [`Sandbox::initialized`]).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command without `--data-dir`.
    pub fn bare(&self) -> Command {
        bare_command(self.root())
    }

    /// A command with `--data-dir` and `args`.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.bare();
        command.arg("--data-dir").arg(self.data_dir()).args(args);
        command
    }

    /// Runs `tessera --data-dir D ARGS…`.
    pub fn run(&self, args: &[&str]) -> Output {
        run_command(self.command(args), None)
    }

    /// Runs `tessera --data-dir D ARGS…` with `input` piped to stdin.
    pub fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        run_command(self.command(args), Some(input))
    }

    /// Creates a token with `args` (after `token create --json`), returning (id, secret).
    #[track_caller]
    pub fn create_token(&self, name: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec!["token", "create", "--json", "--name", name];
        args.extend_from_slice(extra);
        // A lifespan is required (as over the API); unlimited unless the test says.
        if !extra
            .iter()
            .any(|arg| *arg == "--lifespan" || *arg == "--expires-at")
        {
            args.extend_from_slice(&["--lifespan", "unlimited"]);
        }
        let created = self.run(&args).ok().json();
        (str_field(&created, "id"), str_field(&created, "token"))
    }

    /// Adds the `article` resource used by most tests.
    #[track_caller]
    pub fn add_article(&self) {
        self.run(&[
            "resource",
            "create",
            "article",
            "--read",
            "find,findOne",
            "--write",
            "create,update,delete",
        ])
        .ok();
    }

    /// Starts `tessera serve --listen 127.0.0.1:0` on this sandbox's data dir.
    pub fn serve(&self) -> Server {
        Server::start(self.command(["serve", "--listen", "127.0.0.1:0"]))
    }
}

/// A string field of a JSON object.
#[track_caller]
pub fn str_field(value: &Value, field: &str) -> String {
    value
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string field `{field}` in {value}"))
        .to_owned()
}

/// Whether `text` is exactly a default-prefix secret and a newline:
/// `^tsr_[0-9A-Za-z]{46}\n$`.
pub fn is_secret_line(text: &str) -> bool {
    text.strip_suffix('\n')
        .and_then(|secret| secret.strip_prefix("tsr_"))
        .is_some_and(|rest| rest.len() == 46 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A running `tessera serve`; killed (and reaped) on drop, so a failing test leaves no
/// server behind.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// `http://host:port`
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Spawns `command` with stderr piped, waits for the "tessera listening on http://…"
    /// line, then keeps draining stderr in a thread so the pipe never fills.
    pub fn start(mut command: Command) -> Self {
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn tessera serve");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let thread_log = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut address_tx = Some(address_tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("tessera listening on http://").nth(1) {
                    let address: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                    if let Some(tx) = address_tx.take() {
                        let _ = tx.send(address);
                    }
                }
                if let Ok(mut log) = thread_log.lock() {
                    log.push(line);
                }
            }
        });
        let mut server = Self {
            child,
            base: String::new(),
            log,
        };
        match address_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => server.base = format!("http://{address}"),
            Err(error) => panic!(
                "the server did not report its address ({error}); stderr:\n{}",
                server.log()
            ),
        }
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .map(|log| log.join("\n"))
            .unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait().expect("try_wait on the server") {
                Some(status) => return status,
                None if Instant::now() >= deadline => {
                    panic!(
                        "the server did not exit in {timeout:?}; stderr:\n{}",
                        self.log()
                    )
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
