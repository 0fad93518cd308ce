//! A throwaway PostgreSQL cluster on loopback, started once per test binary,
//! and a fresh database per test.
//!
//! Used by the key-store conformance suite and by the end-to-end tests of
//! workers sharing one PostgreSQL key store.
//!
//! The server binaries come from the `postgresql` Debian package (`.ci/run`
//! installs it). The postmaster runs under a small watchdog shell that reads
//! this process's end of a pipe: when the test binary exits, however it
//! exits, the pipe closes and the watchdog stops the server and deletes the
//! cluster, so no server outlives the run (and none holds CI's output pipe).

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The OS user that runs the server when the tests run as root (PostgreSQL refuses root).
const SERVER_USER: &str = "postgres";
/// The cluster's superuser; trust authentication on loopback only.
const SUPERUSER: &str = "delink_test";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Stops the server and removes the cluster once stdin (this process's pipe) closes.
const WATCHDOG: &str = r#"
base=$1; postgres=$2; port=$3
"$postgres" -D "$base/data" -p "$port" \
  -c listen_addresses=127.0.0.1 -c unix_socket_directories="$base" \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
  -c max_connections=300 -c shared_buffers=32MB -c autovacuum=off \
  >"$base/server.log" 2>&1 &
server=$!
cat >/dev/null
kill -INT "$server" 2>/dev/null
wait "$server"
rm -rf "$base"
"#;

/// One running cluster.
pub struct Cluster {
    port: u16,
    admin: Mutex<postgres::Client>,
    /// The watchdog; its stdin is the pipe whose closing stops the server.
    _watchdog: Mutex<Child>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// Returns the test binary's cluster, starting it on first use; fails the test when it cannot.
pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start) {
        Ok(cluster) => cluster,
        Err(message) => panic!("{message}"),
    }
}

impl Cluster {
    /// Creates an empty database and returns its URL, with `password` in it when given.
    pub fn fresh_database(&self, password: Option<&str>) -> String {
        let name = format!(
            "delink_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        self.admin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        let credentials = match password {
            Some(password) => format!("{SUPERUSER}:{password}"),
            None => SUPERUSER.to_owned(),
        };
        format!("postgres://{credentials}@127.0.0.1:{}/{name}", self.port)
    }
}

fn start() -> Result<Cluster, String> {
    let bin = server_binaries()?;
    let as_root = running_as_root();
    let base = std::env::temp_dir().join(format!(
        "delink-pg-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos())
    ));
    std::fs::create_dir(&base).map_err(|error| format!("creating {}: {error}", base.display()))?;
    if as_root {
        run(Command::new("chown")
            .arg("-R")
            .arg(format!("{SERVER_USER}:"))
            .arg(&base))?;
    }
    let data = base.join("data");
    run(server_command(as_root, &bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]))?;

    let port = free_port()?;
    let mut watchdog = server_command(as_root, Path::new("sh"))
        .args(["-c", WATCHDOG, "sh"])
        .arg(&base)
        .arg(bin.join("postgres"))
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("starting the PostgreSQL watchdog: {error}"))?;

    let started = Instant::now();
    let url = format!("host=127.0.0.1 port={port} user={SUPERUSER} dbname=postgres");
    loop {
        match postgres::Client::connect(&url, postgres::NoTls) {
            Ok(admin) => {
                return Ok(Cluster {
                    port,
                    admin: Mutex::new(admin),
                    _watchdog: Mutex::new(watchdog),
                });
            }
            Err(error) if started.elapsed() > READY_TIMEOUT => {
                return Err(format!(
                    "the test PostgreSQL server did not accept connections within {READY_TIMEOUT:?} ({error}); its log:\n{}",
                    server_log(&base)
                ));
            }
            Err(_) => {
                if let Ok(Some(status)) = watchdog.try_wait() {
                    return Err(format!(
                        "the test PostgreSQL server exited ({status}); its log:\n{}",
                        server_log(&base)
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Finds the directory holding `initdb` and `postgres`: the newest
/// `/usr/lib/postgresql/<version>/bin`, else wherever `initdb` is on PATH.
fn server_binaries() -> Result<PathBuf, String> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").is_file() && bin.join("postgres").is_file())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file());
    on_path.ok_or_else(|| {
        "PostgreSQL server binaries (initdb, postgres) not found under /usr/lib/postgresql/*/bin \
         or on PATH; the PostgreSQL tests need them: run .ci/run, or \
         `apt-get install postgresql`"
            .to_owned()
    })
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// Builds a command for a server program, under the server user when running as root.
fn server_command(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", SERVER_USER, "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|error| format!("running {command:?}: {error}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| format!("finding a free port: {error}"))
}

fn server_log(base: &Path) -> String {
    let mut log = String::new();
    let _ = std::fs::File::open(base.join("server.log"))
        .and_then(|mut file| file.read_to_string(&mut log));
    log
}

/// Opens a direct connection to a database, to look at its tables.
pub fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect to the test database")
}
