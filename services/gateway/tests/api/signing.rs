//! Signing provider webhooks the way the providers do, for tests: Amazon SNS
//! messages signed (SHA1withRSA or SHA256withRSA) with a throwaway key and a
//! self-signed certificate that `openssl` makes at test time and a local
//! HTTP server serves; Mailgun signatures (HMAC-SHA256). The end-to-end tests
//! include this file by path, so it needs nothing but std, tokio, serde_json
//! and the `openssl` command.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Where the certificate is served, under [`SnsSigner::url_prefix`].
const CERT_PATH: &str = "/sns/SimpleNotificationService-test.pem";

/// A throwaway signing key, its certificate served on 127.0.0.1, and a
/// count of the certificate's fetches.
pub struct SnsSigner {
    dir: PathBuf,
    port: u16,
    fetches: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl SnsSigner {
    /// Makes a 2048-bit RSA key and a certificate valid from now for two
    /// days, and starts serving the certificate.
    pub async fn start() -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("muster-sns-{}", muster_testkit::unique()));
        std::fs::create_dir_all(&dir)?;
        let make = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ];
        let name = ["-subj", "/CN=sns.test.invalid"];
        let files = ["-keyout", "key.pem", "-out", "cert.pem"];
        openssl(&dir, &[&make[..], &name, &files].concat(), b"")?;
        let pem = std::fs::read(dir.join("cert.pem"))?;

        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let fetches = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve(listener, pem, fetches.clone()));
        Ok(Self {
            dir,
            port,
            fetches,
            task,
        })
    }

    /// The prefix to allow in the gateway's `sns_cert_url_prefixes`.
    pub fn url_prefix(&self) -> String {
        format!("http://127.0.0.1:{}/sns/", self.port)
    }

    /// The certificate's URL, for `SigningCertURL`.
    pub fn cert_url(&self) -> String {
        format!("http://127.0.0.1:{}{CERT_PATH}", self.port)
    }

    /// The port the certificate is served on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many times the certificate was fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Signs `message` (an SNS JSON object) with signature `version` 1 or 2:
    /// sets `SignatureVersion`, `Signature` and, unless present, `SigningCertURL`.
    pub fn sign(&self, message: &mut Value, version: u8) -> std::io::Result<()> {
        let signature = self.signature(&sns_canonical(message), version)?;
        let object = message
            .as_object_mut()
            .expect("an SNS message is a JSON object");
        object.insert("SignatureVersion".into(), version.to_string().into());
        object.insert("Signature".into(), signature.into());
        object
            .entry("SigningCertURL")
            .or_insert_with(|| self.cert_url().into());
        Ok(())
    }

    /// The base64 signature of `text` (version 1: SHA-1, 2: SHA-256).
    pub fn signature(&self, text: &str, version: u8) -> std::io::Result<String> {
        let digest = match version {
            1 => "-sha1",
            _ => "-sha256",
        };
        let signature = openssl(
            &self.dir,
            &["dgst", digest, "-sign", "key.pem"],
            text.as_bytes(),
        )?;
        openssl(&self.dir, &["base64", "-A"], &signature)
            .map(|b| String::from_utf8_lossy(&b).into())
    }
}

impl Drop for SnsSigner {
    /// Stops serving and deletes the key.
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The string SNS signs for `message`, as its documentation lays it out.
pub fn sns_canonical(message: &Value) -> String {
    let names: &[&str] = match message["Type"].as_str() {
        Some("Notification") => &["Message", "MessageId", "Subject", "Timestamp", "TopicArn"],
        _ => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
        ],
    };
    let mut text = String::new();
    for name in names.iter().chain(&["Type"]) {
        if let Some(value) = message[*name].as_str() {
            text.push_str(&format!("{name}\n{value}\n"));
        }
    }
    text
}

/// Mailgun's `signature`: hex HMAC-SHA256 of `timestamp` and `token` under `key`.
pub fn mailgun_signature(key: &str, timestamp: &str, token: &str) -> String {
    let args = ["dgst", "-sha256", "-hmac", key, "-binary"];
    let mac = openssl(
        &std::env::temp_dir(),
        &args,
        format!("{timestamp}{token}").as_bytes(),
    )
    .expect("openssl computes an HMAC");
    mac.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Runs `openssl args` in `dir` with `input`; its output.
fn openssl(dir: &Path, args: &[&str], input: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut child = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("a piped standard input")
        .write_all(input)?;
    let out = child.wait_with_output()?;
    match out.status.success() {
        true => Ok(out.stdout),
        false => Err(std::io::Error::other(format!("openssl {} failed", args[0]))),
    }
}

/// Serves the certificate at [`CERT_PATH`] and 404 elsewhere, one request
/// per connection.
async fn serve(listener: TcpListener, pem: Vec<u8>, fetches: Arc<AtomicUsize>) {
    while let Ok((mut stream, _)) = listener.accept().await {
        let (pem, fetches) = (pem.clone(), fetches.clone());
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buffer = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buffer[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head);
            let path = head.split_whitespace().nth(1).unwrap_or_default();
            let (status, body) = if head.starts_with("GET ") && path == CERT_PATH {
                fetches.fetch_add(1, Ordering::SeqCst);
                ("200 OK", pem)
            } else {
                ("404 Not Found", b"not found\n".to_vec())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/x-x509-ca-cert\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
        });
    }
}
