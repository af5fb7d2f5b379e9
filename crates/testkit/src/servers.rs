//! Private PostgreSQL, RabbitMQ and Redis servers for fault-injection tests.
//! Each runs on free ports with its own data folder, so a test may stop,
//! kill and restart it (on the same port, with the same data) without
//! touching the machine's shared servers. Dropping one kills its processes
//! and removes its folder.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use muster_runtime::config::{AmqpSettings, DatabaseSettings};
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// How a private PostgreSQL server is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// `pg_ctl stop -m fast`: sessions are ended, data is checkpointed.
    Fast,
    /// `pg_ctl stop -m immediate`: a crash; the next start recovers from WAL.
    Immediate,
}

impl Shutdown {
    fn as_str(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Immediate => "immediate",
        }
    }
}

/// A PostgreSQL server of its own (initdb + pg_ctl, run as the `postgres`
/// OS user when the test runs as root), trusting every local connection.
pub struct PrivatePostgres {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    running: bool,
}

impl PrivatePostgres {
    /// Creates a cluster in a new temporary folder and starts it on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = postgres_bin()?;
        if running_as_root() {
            os_user("postgres").await?;
        }
        let port = crate::free_port()?;
        let dir = private_dir("pg")?;
        let socket = dir.join("socket");
        std::fs::create_dir_all(&socket)?;
        set_mode_777(&socket)?;

        let data = dir.join("data");
        let mut initdb = as_user("postgres", &bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync");
        run(&mut initdb, "initdb").await?;

        // Settings go in the cluster's own file so that pg_ctl needs no quoting.
        let settings = format!(
            "\n# muster test server\nlisten_addresses = '127.0.0.1'\nport = {port}\n\
             unix_socket_directories = '{}'\nmax_connections = 200\nshared_buffers = 32MB\n\
             fsync = off\nfull_page_writes = off\n",
            socket.display()
        );
        let conf = data.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .with_context(|| format!("opening {}", conf.display()))?;
        std::io::Write::write_all(&mut file, settings.as_bytes())?;

        let mut server = Self {
            port,
            dir,
            bin,
            running: false,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's URL without a database name.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// Creates an empty database named `label` and returns its settings.
    pub async fn database(&self, label: &str) -> anyhow::Result<DatabaseSettings> {
        let mut admin = PgConnection::connect(&format!("{}/postgres", self.url()))
            .await
            .with_context(|| format!("connecting to the private PostgreSQL on {}", self.port))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{label}\"")))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating database {label}"))?;
        admin.close().await?;
        Ok(DatabaseSettings {
            url: format!("{}/{label}", self.url()),
            max_connections: 10,
            migrate_on_start: true,
        })
    }

    /// Stops the server: every session is cut off.
    pub async fn stop(&mut self, how: Shutdown) -> anyhow::Result<()> {
        let mut stop = self.pg_ctl();
        stop.args(["stop", "-w", "-t", "30", "-m", how.as_str()]);
        run(&mut stop, "pg_ctl stop").await?;
        self.running = false;
        Ok(())
    }

    /// Starts the stopped server again on the same port and data.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        let log = self.dir.join("postgres.log");
        let mut start = self.pg_ctl();
        start.args(["start", "-w", "-t", "60", "-l"]).arg(&log);
        if let Err(error) = run(&mut start, "pg_ctl start").await {
            return Err(error.context(format!(
                "the private PostgreSQL did not start; its log ends with:\n{}",
                tail(&log, 20)
            )));
        }
        self.running = true;
        crate::wait_for_port(self.port, Duration::from_secs(10)).await
    }

    /// Stops the server as `how` says, then starts it again.
    pub async fn restart(&mut self, how: Shutdown) -> anyhow::Result<()> {
        self.stop(how).await?;
        self.start_again().await
    }

    fn pg_ctl(&self) -> Command {
        let mut command = as_user("postgres", &self.bin.join("pg_ctl"));
        command.arg("-D").arg(self.dir.join("data"));
        command
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            let stopped = as_user_blocking("postgres", &self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["stop", "-w", "-t", "10", "-m", "immediate"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if !stopped {
                // pg_ctl could not stop it: end the postmaster by its pid.
                let pid = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
                    .ok()
                    .and_then(|text| text.lines().next().map(str::to_owned));
                if let Some(pid) = pid {
                    signal_blocking("-KILL", &pid);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where initdb and pg_ctl are: `MUSTER_PG_BIN`, /usr/local/bin, or the
/// newest /usr/lib/postgresql/*/bin.
fn postgres_bin() -> anyhow::Result<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").exists() && dir.join("pg_ctl").exists();
    if let Some(dir) = std::env::var_os("MUSTER_PG_BIN").map(PathBuf::from) {
        anyhow::ensure!(
            has_tools(&dir),
            "MUSTER_PG_BIN={} holds no initdb and pg_ctl",
            dir.display()
        );
        return Ok(dir);
    }
    let local = PathBuf::from("/usr/local/bin");
    if has_tools(&local) {
        return Ok(local);
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    newest.map(|(_, bin)| bin).context(
        "initdb and pg_ctl are in neither /usr/local/bin nor /usr/lib/postgresql/*/bin: \
         install PostgreSQL (deploy/local/services.sh) or set MUSTER_PG_BIN to their folder",
    )
}

/// A RabbitMQ node of its own (its own node name, ports, data and logs, no
/// plugins), started in the background.
pub struct PrivateRabbit {
    node: String,
    port: u16,
    dist_port: u16,
    dir: PathBuf,
    tools: RabbitTools,
    server: Option<Child>,
}

impl PrivateRabbit {
    /// Starts a node on free ports; this takes several seconds.
    pub async fn start() -> anyhow::Result<Self> {
        let tools = RabbitTools::find().await?;
        let dir = private_dir("rabbit")?;
        let port = crate::free_port()?;
        let mut dist_port = crate::free_port()?;
        while dist_port == port {
            dist_port = crate::free_port()?;
        }
        std::fs::write(dir.join("enabled_plugins"), "[].\n")?;
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )?;
        let mut rabbit = Self {
            node: format!("t{}@localhost", crate::unique()),
            port,
            dist_port,
            dir,
            tools,
            server: None,
        };
        rabbit.start_again().await?;
        Ok(rabbit)
    }

    /// The AMQP port (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Erlang node name, for `rabbitmqctl -n`.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The broker's AMQP URL.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Broker settings on this node with a fresh prefix.
    pub fn amqp(&self) -> AmqpSettings {
        AmqpSettings {
            url: self.url(),
            ..crate::fresh_amqp()
        }
    }

    /// Starts the stopped node again with the same name, ports and data
    /// (durable queues and their messages survive), and waits until it is up.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.server.is_none(),
            "RabbitMQ node {} is running",
            self.node
        );
        let log = std::fs::File::create(self.dir.join("server.log"))?;
        let mut command = self.tools.command("rabbitmq-server");
        command
            .current_dir(&self.dir)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_PID_FILE", self.pid_file())
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("rabbitmq.conf"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                self.dir.join("enabled_plugins"),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        let server = command.spawn().with_context(|| {
            format!(
                "starting {}; install RabbitMQ (deploy/local/services.sh) or set \
                 MUSTER_RABBITMQ_BIN to the folder of rabbitmq-server and rabbitmqctl",
                self.tools.bin.join("rabbitmq-server").display()
            )
        })?;
        self.server = Some(server);
        if let Err(error) = self.await_startup().await {
            self.kill().await;
            return Err(error.context(format!(
                "RabbitMQ node {} did not start; its output ends with:\n{}",
                self.node,
                tail(&self.dir.join("server.log"), 20)
            )));
        }
        Ok(())
    }

    async fn await_startup(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(server) = &mut self.server
                && let Some(status) = server.try_wait()?
            {
                anyhow::bail!("rabbitmq-server exited ({status})");
            }
            let open = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await;
            if open.is_ok() {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(90),
                "the AMQP port {} is still closed after 90 s",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut ctl = self.rabbitmqctl();
        ctl.args(["await_startup", "--timeout", "60"]);
        run(&mut ctl, "rabbitmqctl await_startup").await?;
        Ok(())
    }

    /// Stops the node cleanly (`rabbitmqctl stop`), killing it when that fails.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let mut ctl = self.rabbitmqctl();
        ctl.arg("stop");
        let stopped = tokio::time::timeout(Duration::from_secs(30), run(&mut ctl, "rabbitmqctl"))
            .await
            .map_err(anyhow::Error::from)
            .and_then(|outcome| outcome);
        if let Some(server) = &mut self.server {
            let exited = tokio::time::timeout(Duration::from_secs(20), server.wait()).await;
            if stopped.is_ok() && matches!(exited, Ok(Ok(_))) {
                self.server = None;
                return Ok(());
            }
        }
        self.kill().await;
        stopped
            .map(drop)
            .context("rabbitmqctl stop failed; the node was killed instead")
    }

    /// Kills the node at once (SIGKILL to its process group and to the
    /// Erlang VM named in its pid file): a crash.
    pub async fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            self.kill_node(&server);
            let _ = server.wait().await;
        }
    }

    fn kill_node(&self, server: &Child) {
        kill_group(server);
        let pid = std::fs::read_to_string(self.pid_file()).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<u32>() {
            signal_blocking("-KILL", &pid.to_string());
        }
        let _ = std::fs::remove_file(self.pid_file());
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("node.pid")
    }

    /// Stops the node cleanly and starts it again with the same name and data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.start_again().await
    }

    fn rabbitmqctl(&self) -> Command {
        let mut command = self.tools.command("rabbitmqctl");
        command.args(["-n", &self.node]);
        command
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            self.kill_node(server);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// RabbitMQ's own scripts, run as the `rabbitmq` OS user when the test runs
/// as root. Debian's /usr/sbin wrappers switch user through `su`, which puts
/// the node in a session of its own, out of reach of a process-group kill;
/// the scripts behind them do not.
struct RabbitTools {
    bin: PathBuf,
    /// uid, gid and home of the `rabbitmq` user (its Erlang cookie is there).
    user: Option<(u32, u32, String)>,
}

impl RabbitTools {
    async fn find() -> anyhow::Result<Self> {
        let bin = std::env::var_os("MUSTER_RABBITMQ_BIN")
            .map(PathBuf::from)
            .or_else(|| {
                let debian = PathBuf::from("/usr/lib/rabbitmq/bin");
                debian.join("rabbitmq-server").exists().then_some(debian)
            })
            .unwrap_or_else(|| PathBuf::from("/usr/sbin"));
        let user = match running_as_root() {
            true => Some(
                os_user("rabbitmq")
                    .await
                    .context("RabbitMQ runs as its own user")?,
            ),
            false => None,
        };
        Ok(Self { bin, user })
    }

    fn command(&self, tool: &str) -> Command {
        let mut command = Command::new(self.bin.join(tool));
        if let Some((uid, gid, home)) = &self.user {
            command.uid(*uid).gid(*gid).env("HOME", home);
        }
        command
    }
}

/// A Redis server of its own that keeps nothing on disk: a restart loses
/// every key, as a crash of the limiter's Redis would.
pub struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    server: Option<Child>,
}

impl PrivateRedis {
    /// Starts `redis-server` on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let mut redis = Self {
            port: crate::free_port()?,
            dir: private_dir("redis")?,
            server: None,
        };
        redis.start_again().await?;
        Ok(redis)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the stopped server again on the same port, empty.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.server.is_none(), "Redis on {} is running", self.port);
        let program = std::env::var_os("MUSTER_REDIS_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("redis-server"));
        let log = std::fs::File::create(self.dir.join("redis.log"))?;
        let server = Command::new(program)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context(
                "starting redis-server; install it (apt-get install redis-server) or set \
                 MUSTER_REDIS_SERVER to its path",
            )?;
        self.server = Some(server);
        if let Err(error) = crate::wait_for_port(self.port, Duration::from_secs(10)).await {
            self.kill().await;
            return Err(error.context(format!(
                "redis-server did not start; its log ends with:\n{}",
                tail(&self.dir.join("redis.log"), 20)
            )));
        }
        Ok(())
    }

    /// Kills the server (SIGKILL); its keys are gone.
    pub async fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill().await;
        }
    }

    /// Kills the server and starts an empty one on the same port.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await;
        self.start_again().await
    }

    /// Deletes every key (`FLUSHALL`).
    pub async fn flush(&self) -> anyhow::Result<()> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .with_context(|| format!("connecting to the private Redis on {}", self.port))?;
        stream.write_all(b"*1\r\n$8\r\nFLUSHALL\r\n").await?;
        let mut answer = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
            .await
            .context("Redis did not answer FLUSHALL in 5 s")??;
        let answer = String::from_utf8_lossy(&answer[..read]);
        anyhow::ensure!(answer.starts_with("+OK"), "FLUSHALL answered {answer:?}");
        Ok(())
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(server) = &mut self.server {
            let _ = server.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new folder under the temporary directory that any user may write,
/// since the servers run as their own OS users.
fn private_dir(kind: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("muster-{kind}-{}", crate::unique()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    set_mode_777(&dir)?;
    Ok(dir)
}

/// `program` run as `user` when the test runs as root, else as the caller.
fn as_user(user: &str, program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", user, "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn as_user_blocking(user: &str, program: &Path) -> std::process::Command {
    if running_as_root() {
        let mut command = std::process::Command::new("runuser");
        command.args(["-u", user, "--"]).arg(program);
        command
    } else {
        std::process::Command::new(program)
    }
}

/// The uid, gid and home folder of the OS user `name`.
async fn os_user(name: &str) -> anyhow::Result<(u32, u32, String)> {
    let entry = Command::new("getent")
        .args(["passwd", name])
        .stdin(Stdio::null())
        .output()
        .await
        .context("running getent")?;
    let entry = String::from_utf8_lossy(&entry.stdout);
    let fields: Vec<&str> = entry.trim().split(':').collect();
    let parsed = match fields.as_slice() {
        [_, _, uid, gid, _, home, ..] => uid
            .parse()
            .ok()
            .zip(gid.parse().ok())
            .map(|(u, g)| (u, g, home.to_string())),
        _ => None,
    };
    parsed.with_context(|| {
        format!(
            "there is no `{name}` OS user to run the private server as: install the server \
             (deploy/local/services.sh)"
        )
    })
}

/// Runs `command` to its end; fails with its output when it fails.
async fn run(command: &mut Command, what: &str) -> anyhow::Result<String> {
    let output = command
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {what}: is it installed?"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        anyhow::bail!(
            "{what} failed ({}):\n{}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// SIGKILL to the process group `child` leads (it was spawned with
/// `process_group(0)`), so that the processes it started die with it.
fn kill_group(child: &Child) {
    if let Some(pid) = child.id() {
        signal_blocking("-KILL", &format!("-{pid}"));
    }
}

fn signal_blocking(signal: &str, target: &str) {
    let _ = std::process::Command::new("kill")
        .args([signal, "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The last `lines` lines of a log file, or why it could not be read.
fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("({} unreadable: {error})", path.display()),
    }
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

fn set_mode_777(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
}
