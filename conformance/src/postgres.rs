//! A PostgreSQL server for the tests that need one: the one `DATABASE_URL` names, or
//! else a throwaway cluster this process starts (PostgreSQL 15's binaries, from
//! `PG_BIN` or `/usr/lib/postgresql/15/bin`), stopped and deleted when the process exits.
//! With neither, the tests fail loudly: they never pass by skipping.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The throwaway cluster this process started, if it started one.
static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();

#[derive(Debug)]
struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    url: String,
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
    let cluster = CLUSTER.get_or_init(|| Some(start()));
    cluster
        .as_ref()
        .map(|cluster| cluster.url.clone())
        .expect("a throwaway PostgreSQL cluster")
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

/// Runs `pg_ctl restart` on the throwaway cluster (the server goes away and comes back;
/// every connection is cut). `PG_RESTART` names a command to run instead for a server
/// of the caller's own (`.ci/run` sets neither: its tests use the throwaway cluster).
///
/// # Panics
///
/// When there is no cluster of this process's and no `PG_RESTART`, or the restart fails.
pub fn restart() {
    if let Ok(command) = std::env::var("PG_RESTART") {
        let status = Command::new("sh").arg("-c").arg(&command).status();
        assert!(
            status.is_ok_and(|status| status.success()),
            "PG_RESTART ({command}) failed"
        );
        return;
    }
    let Some(Some(cluster)) = CLUSTER.get() else {
        panic!(
            "restarting PostgreSQL: this process did not start the server (DATABASE_URL is set); \
             set PG_RESTART to a command that restarts it"
        );
    };
    let status = as_owner(&cluster.bin.join("pg_ctl"))
        .arg("-D")
        .arg(cluster.dir.join("data"))
        .args(["-w", "-m", "fast", "restart"])
        .arg("-l")
        .arg(cluster.dir.join("server.log"))
        .status()
        .expect("pg_ctl runs");
    assert!(status.success(), "pg_ctl restart failed");
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
    let dir = std::env::temp_dir().join(format!(
        "errand-pg-test-{}-{}",
        std::process::id(),
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
    // SAFETY: `stop_at_exit` is an `extern "C" fn()` that only runs commands.
    unsafe {
        libc::atexit(stop_at_exit);
    }
    Cluster {
        url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        dir,
        bin,
    }
}

extern "C" fn stop_at_exit() {
    if let Some(Some(cluster)) = CLUSTER.get() {
        drop(
            as_owner(&cluster.bin.join("pg_ctl"))
                .arg("-D")
                .arg(cluster.dir.join("data"))
                .args(["-w", "-m", "immediate", "stop"])
                .output(),
        );
        drop(std::fs::remove_dir_all(&cluster.dir));
    }
}

/// A TCP port free now on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}
