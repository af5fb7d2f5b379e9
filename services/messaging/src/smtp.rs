//! Connections to the SMTP relay: a pool of lettre SMTP sessions over
//! sockets of our own, driven one command at a time.
//!
//! Two reasons not to use lettre's pooled transport. Its sockets keep
//! Nagle's algorithm on, and lettre writes a message's closing dot as a
//! write of its own: that write waits for the server to acknowledge the
//! message, which servers delay (40 ms on Linux), so one connection carried
//! about 25 messages a second. Here every socket sets `TCP_NODELAY`. And a
//! failure must say whether the message had been handed over: before the
//! message is written nothing can have been received and it may be retried;
//! once it is written, a broken session may have delivered it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// A connection idle for longer is checked with a NOOP before it is used.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(30);

/// How long closing a failed session may take.
const CLOSE_PATIENCE: Duration = Duration::from_secs(1);

/// The SMTP relay deliveries go to.
#[derive(Debug, Clone, Deserialize)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// Connections kept open to the relay; also the messages in flight.
    pub pool_size: u32,
    /// How long one step of a session (connecting, a command, the message)
    /// may take.
    pub timeout_secs: u64,
}

/// Why a message was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The server answered with an error (or cannot take the message as
    /// it is): it was not received. `permanent` for 5xx.
    Refused { permanent: bool, reason: String },
    /// Nothing was handed over: no connection, or the session broke before
    /// the message was written.
    NotSent(String),
    /// The session broke or timed out once the message was being written:
    /// it may have been received.
    Uncertain(String),
}

/// A pool of sessions with one SMTP relay.
pub struct Relay {
    host: String,
    port: u16,
    step: Duration,
    hello: ClientId,
    keep: usize,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl Relay {
    /// A relay client for `settings`; it connects on first use.
    pub fn new(settings: &SmtpSettings) -> Self {
        Self {
            host: settings.host.clone(),
            port: settings.port,
            step: Duration::from_secs(settings.timeout_secs.max(1)),
            hello: ClientId::default(),
            keep: settings.pool_size.max(1) as usize,
            idle: Mutex::default(),
        }
    }

    /// Sends `message` to the envelope's recipients over a pooled session.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<Response, Failure> {
        let mut session = self.session().await?;
        let answer = self.transaction(&mut session, envelope, message).await;
        if answer.is_ok() {
            self.keep_idle(session);
        } else {
            // The session may be mid-transaction or broken: never reused.
            let _ = timeout(CLOSE_PATIENCE, session.abort()).await;
        }
        answer
    }

    /// Closes every idle session.
    pub async fn close(&self) {
        let idle = std::mem::take(&mut *self.lock());
        for (mut session, _) in idle {
            let _ = timeout(CLOSE_PATIENCE, session.quit()).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(AsyncSmtpConnection, Instant)>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn keep_idle(&self, session: AsyncSmtpConnection) {
        let mut idle = self.lock();
        if idle.len() < self.keep {
            idle.push((session, Instant::now()));
        }
    }

    /// An idle session that still works, or a new one.
    async fn session(&self) -> Result<AsyncSmtpConnection, Failure> {
        loop {
            let Some((mut session, since)) = self.lock().pop() else {
                return self.connect().await;
            };
            if session.has_broken() {
                continue;
            }
            if since.elapsed() < CHECK_AFTER_IDLE
                || timeout(self.step, session.test_connected())
                    .await
                    .unwrap_or(false)
            {
                return Ok(session);
            }
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, Failure> {
        let connecting = async {
            let stream = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                .await
                .map_err(|e| e.to_string())
        };
        match timeout(self.step, connecting).await {
            Ok(Ok(session)) => Ok(session),
            Ok(Err(error)) => Err(Failure::NotSent(format!(
                "could not open a session with the SMTP server {}:{}: {error}",
                self.host, self.port
            ))),
            Err(_) => Err(Failure::NotSent(format!(
                "the SMTP server {}:{} did not answer within {} s",
                self.host,
                self.port,
                self.step.as_secs()
            ))),
        }
    }

    async fn transaction(
        &self,
        session: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<Response, Failure> {
        let mut options = Vec::new();
        let non_ascii = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .any(|address| !AsRef::<str>::as_ref(address).is_ascii());
        if non_ascii {
            if !session
                .server_info()
                .supports_feature(Extension::SmtpUtfEight)
            {
                return Err(Failure::Refused {
                    permanent: true,
                    reason: "the address is not ASCII and the SMTP server does not support \
                             SMTPUTF8"
                        .into(),
                });
            }
            options.push(MailParameter::SmtpUtfEight);
        }
        if !message.is_ascii() {
            if !session
                .server_info()
                .supports_feature(Extension::EightBitMime)
            {
                return Err(Failure::Refused {
                    permanent: true,
                    reason: "the message is not 7-bit and the SMTP server does not support \
                             8BITMIME"
                        .into(),
                });
            }
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }

        let mail = Mail::new(envelope.from().cloned(), options);
        self.before_message(session.command(mail)).await?;
        for recipient in envelope.to() {
            let rcpt = Rcpt::new(recipient.clone(), Vec::new());
            self.before_message(session.command(rcpt)).await?;
        }
        self.before_message(session.command(Data)).await?;
        match timeout(self.step, session.message(message)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(answered(&error)
                .unwrap_or_else(|| Failure::Uncertain(format!("the session broke: {error}")))),
            Err(_) => Err(Failure::Uncertain(format!(
                "no answer to the message within {} s",
                self.step.as_secs()
            ))),
        }
    }

    /// One command before the message: whatever goes wrong, nothing was
    /// handed over.
    async fn before_message(
        &self,
        command: impl Future<Output = Result<Response, SmtpError>>,
    ) -> Result<Response, Failure> {
        match timeout(self.step, command).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(answered(&error).unwrap_or_else(|| {
                Failure::NotSent(format!("the session broke before the message: {error}"))
            })),
            Err(_) => Err(Failure::NotSent(format!(
                "the SMTP server did not answer within {} s",
                self.step.as_secs()
            ))),
        }
    }
}

/// The server's refusal, when `error` is one.
fn answered(error: &SmtpError) -> Option<Failure> {
    (error.is_permanent() || error.is_transient()).then(|| Failure::Refused {
        permanent: error.is_permanent(),
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use lettre::message::{Mailbox, SinglePart};
    use muster_testkit::FaultSmtp;

    use super::*;

    fn relay(port: u16) -> Relay {
        Relay::new(&SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            pool_size: 2,
            timeout_secs: 5,
        })
    }

    fn email(to: &str) -> (Envelope, Vec<u8>) {
        let email = lettre::Message::builder()
            .from("Équipe <equipe@example.org>".parse().unwrap())
            .to(Mailbox::new(None, to.parse().unwrap()))
            .subject("Rendez-vous samedi")
            .singlepart(SinglePart::plain("Bonjour, à samedi !\n".to_owned()))
            .unwrap();
        (email.envelope().clone(), email.formatted())
    }

    async fn send(relay: &Relay, to: &str) -> Result<Response, Failure> {
        let (envelope, message) = email(to);
        relay.send(&envelope, &message).await
    }

    #[tokio::test]
    async fn each_answer_says_whether_the_message_was_handed_over() {
        let server = FaultSmtp::start().await.unwrap();
        server.refuse("gone@example.org", 550, "5.1.1 no such user");
        server.defer("busy@example.org", 451, 1);
        server.drop_after_data("cut@example.org");
        let relay = relay(server.port());

        assert!(send(&relay, "ok@example.org").await.is_ok());
        match send(&relay, "gone@example.org").await {
            Err(Failure::Refused {
                permanent: true,
                reason,
            }) => assert!(
                reason.contains("550") || reason.contains("no such user"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            send(&relay, "busy@example.org").await,
            Err(Failure::Refused {
                permanent: false,
                ..
            })
        ));
        assert!(send(&relay, "busy@example.org").await.is_ok());
        assert!(matches!(
            send(&relay, "cut@example.org").await,
            Err(Failure::Uncertain(_))
        ));
        // A refusal or a broken session costs its session, never the next
        // message.
        assert!(send(&relay, "after@example.org").await.is_ok());

        let received = server.received_by_recipient();
        for address in ["ok@example.org", "busy@example.org", "after@example.org"] {
            assert_eq!(received.get(address).map(Vec::len), Some(1), "{address}");
        }
        assert!(!received.contains_key("gone@example.org"));
    }

    #[tokio::test]
    async fn many_messages_share_the_pooled_sessions() {
        let server = FaultSmtp::start().await.unwrap();
        let relay = relay(server.port());
        let sends = (0..40).map(|n| {
            let relay = &relay;
            async move { send(relay, &format!("p{n}@example.org")).await }
        });
        let answers = futures::future::join_all(sends).await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        assert_eq!(server.messages().len(), 40);
        assert!(
            relay.lock().len() <= 2,
            "more idle sessions kept than the pool size"
        );
        relay.close().await;
        assert!(relay.lock().is_empty());
    }

    #[tokio::test]
    async fn no_server_means_nothing_was_handed_over() {
        let port = muster_testkit::free_port().unwrap();
        match send(&relay(port), "ok@example.org").await {
            Err(Failure::NotSent(reason)) => assert!(reason.contains(&port.to_string())),
            other => panic!("{other:?}"),
        }
    }
}
