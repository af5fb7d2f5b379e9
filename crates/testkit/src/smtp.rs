//! A real SMTP server for tests: Postfix's `smtp-sink`, on a free port,
//! keeping each message it accepts as a file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

/// A running `smtp-sink` and the folder it writes messages to.
pub struct SmtpSink {
    port: u16,
    dir: PathBuf,
    child: Child,
}

/// One message as the sink received it.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    /// Envelope recipients (RCPT TO).
    pub recipients: Vec<String>,
    /// The dump file: the sink's `X-…` lines, then the message.
    pub raw: String,
}

impl SmtpSink {
    /// Starts a sink accepting everything.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// Starts a sink with extra `smtp-sink` flags (fault injection: `-r`, `-q`, …).
    pub async fn start_with(flags: &[&str]) -> anyhow::Result<Self> {
        let port = crate::free_port()?;
        let dir = std::env::temp_dir().join(format!("muster-sink-{}", crate::unique()));
        std::fs::create_dir_all(&dir)?;
        set_mode_777(&dir)?;
        let child = spawn(port, &dir, flags).await?;
        Ok(Self { port, dir, child })
    }

    /// Replaces the running sink by one with `flags`, on the same port and
    /// folder: a server that starts or stops refusing mail mid-campaign.
    pub async fn restart_with(&mut self, flags: &[&str]) -> anyhow::Result<()> {
        let _ = self.child.kill().await;
        self.child = spawn(self.port, &self.dir, flags).await?;
        Ok(())
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder holding one file per received message.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every message received so far.
    pub fn messages(&self) -> anyhow::Result<Vec<ReceivedMessage>> {
        let mut messages = Vec::new();
        collect(&self.dir, &mut messages)?;
        Ok(messages)
    }

    /// Stops the sink.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

async fn spawn(port: u16, dir: &Path, flags: &[&str]) -> anyhow::Result<Child> {
    let mut command = Command::new(smtp_sink_path());
    if running_as_root() {
        command.args(["-u", "nobody"]);
    }
    let template = format!("{}/%Y%m%d%H/%M.", dir.display());
    command
        .args(flags)
        .args(["-d", &template, &format!("127.0.0.1:{port}"), "256"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let child = command.spawn().context(
        "starting smtp-sink; install it with deploy/local/services.sh (Debian package postfix)",
    )?;
    crate::wait_for_port(port, Duration::from_secs(5))
        .await
        .context("smtp-sink did not start")?;
    Ok(child)
}

fn collect(dir: &Path, out: &mut Vec<ReceivedMessage>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
            continue;
        }
        let raw = String::from_utf8_lossy(&std::fs::read(&path)?).into_owned();
        let recipients = raw
            .lines()
            .take_while(|line| line.starts_with("X-") || line.starts_with("Received:"))
            .filter_map(|line| line.strip_prefix("X-Rcpt-Args:"))
            .map(|args| {
                let args = args.trim();
                let args = args.strip_prefix("TO:").unwrap_or(args);
                args.trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect();
        out.push(ReceivedMessage { recipients, raw });
    }
    Ok(())
}

/// Where `smtp-sink` is installed.
pub fn smtp_sink_path() -> PathBuf {
    std::env::var_os("MUSTER_SMTP_SINK")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/smtp-sink"))
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
