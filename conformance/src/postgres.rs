//! A PostgreSQL server for the tests that need one: the one `DATABASE_URL` names, or
//! else a throwaway cluster this process starts (PostgreSQL 15's binaries, from
//! `PG_BIN` or `/usr/lib/postgresql/15/bin`), stopped and deleted when the process exits.
//! With neither, the tests fail loudly: they never pass by skipping. A test that restarts
//! its server takes a [`Cluster`] of its own, whatever `DATABASE_URL` says.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The shared throwaway cluster this process started, if it started one.
static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// A throwaway PostgreSQL cluster: a data directory of its own, a server on a free port
/// of 127.0.0.1. Dropping it stops the server and deletes the directory.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    url: String,
}

impl Cluster {
    /// Starts one.
    ///
    /// # Panics
    ///
    /// When PostgreSQL's binaries are missing or the server does not start.
    pub fn start() -> Self {
        start()
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `pg_ctl restart -m fast`: the server goes away (every connection is cut) and
    /// comes back on the same port and data.
    ///
    /// # Panics
    ///
    /// When the restart fails.
    pub fn restart(&self) {
        let status = as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-m", "fast", "restart"])
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .status()
            .expect("pg_ctl runs");
        assert!(status.success(), "pg_ctl restart failed");
    }

    fn stop(&self) {
        drop(
            as_owner(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-w", "-m", "immediate", "stop"])
                .output(),
        );
        drop(std::fs::remove_dir_all(&self.dir));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The URL of the server the tests use: `DATABASE_URL`, or a throwaway cluster started
/// now (once per process).
///
/// # Panics
///
/// When `DATABASE_URL` is unset and no cluster can be started: the message says what to
/// install or set.
pub fn url() -> String {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return url;
    }
    let cluster = CLUSTER.get_or_init(|| {
        // SAFETY: `stop_at_exit` is an `extern "C" fn()` that only runs commands.
        unsafe {
            libc::atexit(stop_at_exit);
        }
        start()
    });
    cluster.url.clone()
}

/// A schema name no other check uses: `prefix`, this process and a counter.
pub fn fresh_schema(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "t_{prefix}_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst),
        nanos % 100_000
    )
}

/// `program`, run as the `postgres` user when this process is root (the server refuses
/// to run as root).
fn as_owner(program: &Path) -> Command {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn start() -> Cluster {
    let bin = PathBuf::from(
        std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()),
    );
    assert!(
        bin.join("initdb").exists(),
        "PostgreSQL is needed: set DATABASE_URL to a server (postgres://user@host:port/db), \
         or install PostgreSQL 15 (or set PG_BIN to its bin directory) so the tests can start \
         a throwaway one"
    );
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "errand-pg-test-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    ));
    std::fs::create_dir_all(&dir).expect("a directory for the cluster");
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        let status = Command::new("chown")
            .arg("postgres")
            .arg(&dir)
            .status()
            .expect("chown runs");
        assert!(status.success(), "chown postgres {dir:?} failed");
    }
    let output = as_owner(&bin.join("initdb"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-A", "trust", "-U", "postgres"])
        .output()
        .expect("initdb runs");
    assert!(
        output.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let port = free_port();
    let status = as_owner(&bin.join("pg_ctl"))
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-l")
        .arg(dir.join("server.log"))
        .arg("-o")
        .arg(format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c max_connections=300",
            dir.display()
        ))
        .args(["-w", "start"])
        .status()
        .expect("pg_ctl runs");
    assert!(
        status.success(),
        "pg_ctl start failed: see {}",
        dir.join("server.log").display()
    );
    Cluster {
        url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        dir,
        bin,
    }
}

/// Stops the shared cluster when the process exits (a static is never dropped).
extern "C" fn stop_at_exit() {
    if let Some(cluster) = CLUSTER.get() {
        cluster.stop();
    }
}

/// A TCP port free now on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}
