//! The server under test: `assent serve` as a child process on a fresh store (a temporary
//! SQLite directory, or a PostgreSQL database created for the bench and dropped after it).

use crate::error::BenchError;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// How long a server may take to log where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh store: its data directory, and its PostgreSQL database when there is one.
pub struct Backing {
    bin: PathBuf,
    dir: TempDir,
    database: Option<PgDatabase>,
}

impl Backing {
    pub fn sqlite(bin: &Path) -> Result<Backing, BenchError> {
        Ok(Backing { bin: bin.to_owned(), dir: TempDir::new()?, database: None })
    }

    /// A database of its own on the PostgreSQL server `server_url` names.
    pub async fn postgres(bin: &Path, server_url: &str) -> Result<Backing, BenchError> {
        let database = PgDatabase::create(server_url).await?;
        Ok(Backing { bin: bin.to_owned(), dir: TempDir::new()?, database: Some(database) })
    }

    pub fn store_name(&self) -> &'static str {
        if self.database.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// Another fresh store of the same kind, for a run that needs a store of its own.
    pub async fn sibling(&self) -> Result<Backing, BenchError> {
        match &self.database {
            Some(database) => Backing::postgres(&self.bin, &database.server_url).await,
            None => Backing::sqlite(&self.bin),
        }
    }

    /// What the store takes on disk: the data directory's files (the SQLite file with its
    /// WAL), or `pg_database_size` of the bench's database.
    pub async fn store_bytes(&self) -> Result<u64, BenchError> {
        let Some(database) = &self.database else { return directory_bytes(&self.dir.0) };
        let sql = format!("SELECT pg_database_size('{}')", database.name);
        let (client, connection) =
            tokio_postgres::connect(&database.server_url, tokio_postgres::NoTls).await?;
        let connection = tokio::spawn(connection);
        let size = client.query_one(&sql, &[]).await.map(|row| row.get::<_, i64>(0));
        drop(client);
        let _ = connection.await;
        Ok(size?.max(0) as u64)
    }

    /// Drops the PostgreSQL database; the data directory goes with `self`.
    pub async fn close(self) -> Result<(), BenchError> {
        match self.database {
            Some(database) => database.drop_database().await,
            None => Ok(()),
        }
    }

    fn assent(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env_remove("ASSENT_DATABASE_URL").env("ASSENT_DATA_DIR", &self.dir.0);
        cmd.env("RUST_LOG", "info");
        if let Some(database) = &self.database {
            cmd.args(["--database-url", &database.url]);
        }
        cmd
    }

    /// `assent workspace create`: its printed credentials.
    pub async fn create_workspace(&self) -> Result<Credentials, BenchError> {
        let out = self.assent().args(["workspace", "create", "--name", "bench"]).output().await;
        let out = out.map_err(|e| BenchError::Server(format!("{}: {e}", self.bin.display())))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(BenchError::Server(format!("workspace create failed: {stderr}")));
        }
        let printed: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| BenchError::Server(format!("workspace create printed no JSON: {e}")))?;
        let field = |name: &str| printed[name].as_str().map(str::to_owned);
        match (field("apiKey"), field("authToken")) {
            (Some(api_key), Some(auth_token)) => Ok(Credentials { api_key, auth_token }),
            _ => Err(BenchError::Server(format!("workspace create printed {printed}"))),
        }
    }

    /// `assent serve --no-bootstrap` on port 0, once it has logged its address. With a CA
    /// file, webhooks may go to 127.0.0.1, over HTTPS with a certificate that CA signed.
    pub async fn serve(&self, webhook_ca_file: Option<&Path>) -> Result<Server, BenchError> {
        let mut cmd = self.assent();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--no-bootstrap"]);
        if let Some(ca_file) = webhook_ca_file {
            cmd.args(["--webhook-allow", "127.0.0.1", "--webhook-ca-file"]).arg(ca_file);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
        // A bench that is killed drops nothing: the kernel ends the server with it, so no
        // server is left running to weigh on the next measurement.
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| match libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            });
        }
        let mut child =
            cmd.spawn().map_err(|e| BenchError::Server(format!("{}: {e}", self.bin.display())))?;
        let Some(stderr) = child.stderr.take() else {
            return Err(BenchError::Server("the server's stderr is not piped".into()));
        };
        let (sender, listen) = oneshot::channel();
        tokio::spawn(report_listen_address(stderr, sender));
        let addr = match tokio::time::timeout(START_TIMEOUT, listen).await {
            Ok(Ok(addr)) => addr,
            Ok(Err(_)) => {
                return Err(BenchError::Server("assent serve ended before listening".into()))
            }
            Err(_) => {
                return Err(BenchError::Server(format!("no listen= line in {START_TIMEOUT:?}")))
            }
        };
        Ok(Server { child, base_url: format!("http://{addr}") })
    }
}

/// Reads the server's log until the `listen=` line, then keeps draining it so the server
/// never blocks on a full pipe; its warnings and errors are echoed on the bench's stderr.
async fn report_listen_address(
    stderr: tokio::process::ChildStderr,
    sender: oneshot::Sender<String>,
) {
    let mut lines = BufReader::new(stderr).lines();
    let mut sender = Some(sender);
    while let Ok(Some(line)) = lines.next_line().await {
        let addr = line.split("listen=").nth(1).and_then(|rest| rest.split_whitespace().next());
        if let Some(addr) = addr {
            if let Some(sender) = sender.take() {
                let _ = sender.send(addr.to_owned());
            }
        } else if line.contains(" WARN ") || line.contains(" ERROR ") {
            eprintln!("server: {line}");
        }
    }
}

pub struct Credentials {
    pub api_key: String,
    pub auth_token: String,
}

/// A running `assent serve`; killed if dropped without `stop`.
pub struct Server {
    child: Child,
    pub base_url: String,
}

impl Server {
    /// SIGTERM, then waits for the process to end; a server that fails to stop cleanly is an
    /// error.
    pub async fn stop(mut self) -> Result<(), BenchError> {
        let Some(pid) = self.child.id() else { return Ok(()) };
        let sent = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        if !sent.is_ok_and(|status| status.success()) {
            return Err(BenchError::Server(format!("could not send SIGTERM to {pid}")));
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(BenchError::Server(format!("the server stopped with {status}"))),
            Ok(Err(e)) => Err(BenchError::Server(format!("waiting for the server: {e}"))),
            Err(_) => {
                Err(BenchError::Server(format!("the server ran on {STOP_TIMEOUT:?} after SIGTERM")))
            }
        }
    }
}

impl Server {
    /// The process's resident memory now (`VmRSS` in `/proc/<pid>/status`).
    pub fn rss_bytes(&self) -> Result<u64, BenchError> {
        let Some(pid) = self.child.id() else {
            return Err(BenchError::Server("the server has ended".into()));
        };
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path)
            .map_err(|e| BenchError::Server(format!("{path}: {e}")))?;
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
        kib.map(|kib| kib * 1024).ok_or_else(|| BenchError::Server(format!("no VmRSS in {path}")))
    }

    /// SIGKILL, as a crash would end it; returns once the process is gone.
    pub async fn kill(mut self) -> Result<(), BenchError> {
        self.child.kill().await.map_err(|e| BenchError::Server(format!("SIGKILL: {e}")))
    }
}

/// The bytes of the files in `dir` and its subdirectories.
fn directory_bytes(dir: &Path) -> Result<u64, BenchError> {
    let unreadable = |e: std::io::Error| BenchError::Server(format!("{}: {e}", dir.display()));
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let meta = entry.metadata().map_err(unreadable)?;
        bytes += if meta.is_dir() { directory_bytes(&entry.path())? } else { meta.len() };
    }
    Ok(bytes)
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Result<TempDir, BenchError> {
        let dir = std::env::temp_dir().join(format!("assent-bench-{}", random_hex()?));
        std::fs::create_dir_all(&dir)
            .map_err(|e| BenchError::Server(format!("{}: {e}", dir.display())))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn random_hex() -> Result<String, BenchError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| BenchError::Server(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// A database created for one bench on a PostgreSQL server.
struct PgDatabase {
    server_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    async fn create(server_url: &str) -> Result<PgDatabase, BenchError> {
        let name = format!("assent_bench_{}", random_hex()?);
        admin_execute(server_url, &format!("CREATE DATABASE {name}")).await?;
        let url = with_database(server_url, &name);
        Ok(PgDatabase { server_url: server_url.to_owned(), name, url })
    }

    async fn drop_database(self) -> Result<(), BenchError> {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        admin_execute(&self.server_url, &sql).await
    }
}

async fn admin_execute(server_url: &str, sql: &str) -> Result<(), BenchError> {
    let (client, connection) = tokio_postgres::connect(server_url, tokio_postgres::NoTls).await?;
    let connection = tokio::spawn(connection);
    let executed = client.batch_execute(sql).await;
    drop(client);
    let _ = connection.await;
    Ok(executed?)
}

/// `url` with its database name replaced.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced_and_the_query_kept() {
        let rows = [
            ("postgres://u@h:5432/postgres", "postgres://u@h:5432/b"),
            ("postgres://u@h:5432", "postgres://u@h:5432/b"),
            ("postgres://u@h/db?sslmode=disable", "postgres://u@h/b?sslmode=disable"),
        ];
        for (url, expected) in rows {
            assert_eq!(with_database(url, "b"), expected, "{url}");
        }
    }
}
