//! An SMTP server for tests that answers each recipient as the test says:
//! it speaks RFC 5321 (EHLO with PIPELINING, 8BITMIME and SIZE, several
//! transactions per connection, dot-unstuffed DATA), keeps every message it
//! accepts in memory, and logs what it answered to whom and when.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::ReceivedMessage;

/// The largest message accepted, as announced in the EHLO `SIZE` line.
pub const MAX_MESSAGE_BYTES: usize = 10 << 20;
/// The longest command line read; longer ones are answered 500.
const MAX_COMMAND_BYTES: usize = 4096;
const HOSTNAME: &str = "fault-smtp.test";

/// A running fault-injecting SMTP server on 127.0.0.1.
pub struct FaultSmtp {
    port: u16,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

/// Where in a transaction an answer was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The answer to `RCPT TO`.
    Rcpt,
    /// The answer after the message data (one entry per accepted recipient).
    Data,
}

/// One answer the server gave about one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The recipient, lowercased.
    pub recipient: String,
    pub stage: Stage,
    /// The reply code; `None` when the connection was closed instead.
    pub code: Option<u16>,
    /// The reply text after the code.
    pub text: String,
    pub at: SystemTime,
}

impl Answer {
    /// Whether the server took the message (or the recipient) at this stage.
    pub fn accepted(&self) -> bool {
        self.code.is_some_and(|code| (200..300).contains(&code))
    }
}

/// What the server does with one recipient.
#[derive(Debug, Clone)]
enum Rule {
    /// Refuse at `RCPT` with this reply, every time.
    Refuse { code: u16, text: String },
    /// Refuse at `RCPT` with a 4xx reply `remaining` more times, then accept.
    Defer {
        code: u16,
        text: String,
        remaining: u32,
    },
    /// Read the message data, then close the connection without answering.
    DropAfterData,
}

#[derive(Default)]
struct State {
    rules: HashMap<String, Rule>,
    messages: Vec<ReceivedMessage>,
    log: Vec<Answer>,
}

impl FaultSmtp {
    /// Starts a server on a free port that accepts everything until told otherwise.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State::default()));
        let task = tokio::spawn(accept(listener, state.clone()));
        Ok(Self { port, state, task })
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Refuses `address` at `RCPT TO` with `code` (5xx) and `text`, e.g.
    /// `refuse("jean@example.org", 550, "5.1.1 no such user")`.
    pub fn refuse(&self, address: &str, code: u16, text: &str) {
        let rule = Rule::Refuse {
            code,
            text: text.to_owned(),
        };
        self.lock().rules.insert(key(address), rule);
    }

    /// Answers `RCPT TO:<address>` with `code` (4xx) the next `times` times,
    /// then accepts it.
    pub fn defer(&self, address: &str, code: u16, times: u32) {
        let rule = Rule::Defer {
            code,
            text: "4.2.0 try again later".into(),
            remaining: times,
        };
        self.lock().rules.insert(key(address), rule);
    }

    /// Reads a message to `address` to its end, then closes the connection
    /// without answering: the client cannot know whether it was received.
    pub fn drop_after_data(&self, address: &str) {
        self.lock().rules.insert(key(address), Rule::DropAfterData);
    }

    /// Every message accepted so far (recipients lowercased, data unstuffed).
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.lock().messages.clone()
    }

    /// Every answer given so far, in order.
    pub fn log(&self) -> Vec<Answer> {
        self.lock().log.clone()
    }

    /// The answers given about `address`, in order.
    pub fn answers_to(&self, address: &str) -> Vec<Answer> {
        let address = key(address);
        self.lock()
            .log
            .iter()
            .filter(|answer| answer.recipient == address)
            .cloned()
            .collect()
    }

    /// Accepted messages per recipient (lowercased).
    pub fn received_by_recipient(&self) -> HashMap<String, Vec<ReceivedMessage>> {
        let mut by_recipient: HashMap<String, Vec<ReceivedMessage>> = HashMap::new();
        for message in self.messages() {
            for recipient in &message.recipients {
                by_recipient
                    .entry(recipient.clone())
                    .or_default()
                    .push(message.clone());
            }
        }
        by_recipient
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for FaultSmtp {
    /// Stops listening and closes every open session.
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panicking test thread leaves the data as it was; keep serving it.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn key(address: &str) -> String {
    address.trim().to_lowercase()
}

/// Accepts connections until aborted; aborting drops (and ends) every session.
async fn accept(listener: TcpListener, state: Arc<Mutex<State>>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                sessions.spawn(serve(stream, state.clone()));
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>) {
    let (read, write) = stream.into_split();
    let _ = Session::new(BufReader::new(read), write, state).run().await;
}

/// One SMTP connection.
struct Session {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    state: Arc<Mutex<State>>,
    greeted: bool,
    sender: Option<String>,
    recipients: Vec<String>,
}

/// What a command asks of the session.
enum Next {
    Continue,
    Close,
}

impl Session {
    fn new(
        reader: BufReader<OwnedReadHalf>,
        writer: OwnedWriteHalf,
        state: Arc<Mutex<State>>,
    ) -> Self {
        Self {
            reader,
            writer,
            state,
            greeted: false,
            sender: None,
            recipients: Vec::new(),
        }
    }

    async fn run(mut self) -> std::io::Result<()> {
        self.reply(220, &format!("{HOSTNAME} ESMTP fault injection ready"))
            .await?;
        loop {
            let Some(line) = self.read_line(MAX_COMMAND_BYTES).await? else {
                return Ok(());
            };
            let Ok(line) = String::from_utf8(line) else {
                self.reply(500, "5.5.2 command is not UTF-8").await?;
                continue;
            };
            if let Next::Close = self.command(line.trim_end_matches(['\r', '\n'])).await? {
                return Ok(());
            }
        }
    }

    async fn command(&mut self, line: &str) -> std::io::Result<Next> {
        let (verb, argument) = line.split_once(' ').unwrap_or((line, ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                self.reset();
                self.greeted = true;
                let lines = [
                    HOSTNAME.to_owned(),
                    "PIPELINING".to_owned(),
                    "8BITMIME".to_owned(),
                    format!("SIZE {MAX_MESSAGE_BYTES}"),
                ];
                self.reply_lines(250, &lines).await?;
            }
            "HELO" => {
                self.reset();
                self.greeted = true;
                self.reply(250, HOSTNAME).await?;
            }
            "MAIL" => self.mail(argument).await?,
            "RCPT" => self.rcpt(argument).await?,
            "DATA" => return self.data().await,
            "RSET" => {
                self.reset();
                self.reply(250, "2.0.0 reset").await?;
            }
            "NOOP" => self.reply(250, "2.0.0 ok").await?,
            "QUIT" => {
                self.reply(221, "2.0.0 bye").await?;
                return Ok(Next::Close);
            }
            _ => self.reply(500, "5.5.1 command not recognized").await?,
        }
        Ok(Next::Continue)
    }

    async fn mail(&mut self, argument: &str) -> std::io::Result<()> {
        if !self.greeted {
            return self.reply(503, "5.5.1 say EHLO first").await;
        }
        if self.sender.is_some() {
            return self.reply(503, "5.5.1 nested MAIL command").await;
        }
        let Some((address, parameters)) = path_argument(argument, "FROM:") else {
            return self.reply(501, "5.5.4 syntax: MAIL FROM:<address>").await;
        };
        for parameter in parameters.split_whitespace() {
            let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            match name.to_ascii_uppercase().as_str() {
                "SIZE" => match value.parse::<usize>() {
                    Ok(size) if size > MAX_MESSAGE_BYTES => {
                        return self.reply(552, "5.3.4 message too big").await;
                    }
                    Ok(_) => {}
                    Err(_) => return self.reply(501, "5.5.4 bad SIZE").await,
                },
                "BODY" if ["7BIT", "8BITMIME"].contains(&value.to_ascii_uppercase().as_str()) => {}
                _ => return self.reply(555, "5.5.4 unsupported parameter").await,
            }
        }
        self.sender = Some(address);
        self.reply(250, "2.1.0 sender ok").await
    }

    async fn rcpt(&mut self, argument: &str) -> std::io::Result<()> {
        if self.sender.is_none() {
            return self.reply(503, "5.5.1 need MAIL before RCPT").await;
        }
        let Some((address, _)) = path_argument(argument, "TO:") else {
            return self.reply(501, "5.5.4 syntax: RCPT TO:<address>").await;
        };
        let recipient = key(&address);
        let (code, text) = {
            let mut state = lock(&self.state);
            let answer = match state.rules.get_mut(&recipient) {
                Some(Rule::Refuse { code, text }) => (*code, text.clone()),
                Some(Rule::Defer {
                    code,
                    text,
                    remaining,
                }) if *remaining > 0 => {
                    *remaining -= 1;
                    (*code, text.clone())
                }
                _ => (250, "2.1.5 recipient ok".to_owned()),
            };
            state.log.push(Answer {
                recipient: recipient.clone(),
                stage: Stage::Rcpt,
                code: Some(answer.0),
                text: answer.1.clone(),
                at: SystemTime::now(),
            });
            answer
        };
        if code == 250 {
            self.recipients.push(recipient);
        }
        self.reply(code, &text).await
    }

    async fn data(&mut self) -> std::io::Result<Next> {
        if self.sender.is_none() {
            self.reply(503, "5.5.1 need MAIL before DATA").await?;
            return Ok(Next::Continue);
        }
        if self.recipients.is_empty() {
            self.reply(554, "5.5.1 no valid recipients").await?;
            return Ok(Next::Continue);
        }
        self.reply(354, "end data with <CR><LF>.<CR><LF>").await?;
        let Some(data) = self.read_data().await? else {
            return Ok(Next::Close);
        };
        let recipients = std::mem::take(&mut self.recipients);
        self.sender = None;

        let drop_it = {
            let state = lock(&self.state);
            recipients
                .iter()
                .any(|r| matches!(state.rules.get(r), Some(Rule::DropAfterData)))
        };
        let (code, text) = match data.len() {
            n if n > MAX_MESSAGE_BYTES => (552, "5.3.4 message too big"),
            _ => (250, "2.0.0 queued"),
        };
        {
            let mut state = lock(&self.state);
            for recipient in &recipients {
                state.log.push(Answer {
                    recipient: recipient.clone(),
                    stage: Stage::Data,
                    code: (!drop_it).then_some(code),
                    text: if drop_it { String::new() } else { text.into() },
                    at: SystemTime::now(),
                });
            }
            if !drop_it && code == 250 {
                state.messages.push(ReceivedMessage {
                    recipients,
                    raw: String::from_utf8_lossy(&data).into_owned(),
                });
            }
        }
        if drop_it {
            let _ = self.writer.shutdown().await;
            return Ok(Next::Close);
        }
        self.reply(code, text).await?;
        Ok(Next::Continue)
    }

    /// Reads message lines up to the lone `.`, removing the transparency dot
    /// (RFC 5321 §4.5.2); `None` when the client went away first.
    async fn read_data(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut data = Vec::new();
        loop {
            // Lines past the limit are still read (and the message refused).
            let Some(line) = self.read_line(usize::MAX).await? else {
                return Ok(None);
            };
            let content = line.strip_suffix(b"\n").unwrap_or(&line);
            let content = content.strip_suffix(b"\r").unwrap_or(content);
            if content == b"." {
                return Ok(Some(data));
            }
            let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
            if data.len() <= MAX_MESSAGE_BYTES {
                data.extend_from_slice(unstuffed);
            }
        }
    }

    /// One line with its ending; `None` at the end of the stream. A line
    /// longer than `limit` is read to its end and cut.
    async fn read_line(&mut self, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        loop {
            let buffer = self.reader.fill_buf().await?;
            if buffer.is_empty() {
                return Ok((!line.is_empty()).then_some(line));
            }
            let (taken, complete) = match buffer.iter().position(|b| *b == b'\n') {
                Some(end) => (end + 1, true),
                None => (buffer.len(), false),
            };
            let room = limit.saturating_sub(line.len()).min(taken);
            line.extend_from_slice(&buffer[..room]);
            self.reader.consume(taken);
            if complete {
                return Ok(Some(line));
            }
        }
    }

    fn reset(&mut self) {
        self.sender = None;
        self.recipients.clear();
    }

    async fn reply(&mut self, code: u16, text: &str) -> std::io::Result<()> {
        self.reply_lines(code, &[text.to_owned()]).await
    }

    async fn reply_lines(&mut self, code: u16, lines: &[String]) -> std::io::Result<()> {
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            let separator = if i + 1 == lines.len() { ' ' } else { '-' };
            out.push_str(&format!("{code}{separator}{line}\r\n"));
        }
        self.writer.write_all(out.as_bytes()).await?;
        self.writer.flush().await
    }
}

/// `FROM:<a@b> BODY=8BITMIME` → (`a@b`, `BODY=8BITMIME`); tolerates a space
/// after the colon and the null path `<>`.
fn path_argument(argument: &str, keyword: &str) -> Option<(String, String)> {
    let argument = argument.trim();
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = argument[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let (address, parameters) = rest.split_once('>')?;
    Some((address.to_owned(), parameters.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A raw SMTP client: sends lines and reads replies.
    struct Client {
        reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
        writer: tokio::net::tcp::OwnedWriteHalf,
    }

    impl Client {
        async fn connect(server: &FaultSmtp) -> Self {
            let stream = TcpStream::connect(("127.0.0.1", server.port()))
                .await
                .unwrap();
            let (read, writer) = stream.into_split();
            let mut client = Self {
                reader: BufReader::new(read),
                writer,
            };
            assert_eq!(client.reply().await.0, 220);
            client
        }

        async fn send(&mut self, text: &str) {
            self.writer.write_all(text.as_bytes()).await.unwrap();
        }

        /// The code and the lines of one (possibly multi-line) reply.
        async fn reply(&mut self) -> (u16, Vec<String>) {
            let mut lines = Vec::new();
            loop {
                let mut line = String::new();
                if self.reader.read_line(&mut line).await.unwrap() == 0 {
                    return (0, lines);
                }
                let code = line[..3].parse().unwrap();
                let last = line.as_bytes()[3] == b' ';
                lines.push(line[4..].trim_end().to_owned());
                if last {
                    return (code, lines);
                }
            }
        }

        async fn command(&mut self, line: &str) -> u16 {
            self.send(&format!("{line}\r\n")).await;
            self.reply().await.0
        }
    }

    #[tokio::test]
    async fn ehlo_announces_pipelining_8bitmime_and_size() {
        let server = FaultSmtp::start().await.unwrap();
        let mut client = Client::connect(&server).await;

        client.send("EHLO client.test\r\n").await;
        let (code, lines) = client.reply().await;

        assert_eq!(code, 250);
        assert!(lines.contains(&"PIPELINING".to_owned()), "{lines:?}");
        assert!(lines.contains(&"8BITMIME".to_owned()), "{lines:?}");
        assert!(
            lines.contains(&format!("SIZE {MAX_MESSAGE_BYTES}")),
            "{lines:?}"
        );
    }

    #[tokio::test]
    async fn two_pipelined_transactions_on_one_connection_are_kept_unstuffed() {
        let server = FaultSmtp::start().await.unwrap();
        let mut client = Client::connect(&server).await;
        assert_eq!(client.command("EHLO client.test").await, 250);

        client
            .send("MAIL FROM:<a@example.org> BODY=8BITMIME\r\nRCPT TO:<B@Example.org>\r\nDATA\r\n")
            .await;
        for expected in [250, 250, 354] {
            assert_eq!(client.reply().await.0, expected);
        }
        client
            .send("Subject: one\r\n\r\n..leading dot\r\n.\r\n")
            .await;
        assert_eq!(client.reply().await.0, 250);
        assert_eq!(client.command("RSET").await, 250);
        assert_eq!(client.command("MAIL FROM:<>").await, 250);
        assert_eq!(client.command("RCPT TO:<c@example.org>").await, 250);
        assert_eq!(client.command("DATA").await, 354);
        client.send("second\r\n.\r\n").await;
        assert_eq!(client.reply().await.0, 250);
        assert_eq!(client.command("NOOP").await, 250);
        assert_eq!(client.command("QUIT").await, 221);

        let messages = server.messages();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].recipients, ["b@example.org"]);
        assert_eq!(messages[0].raw, "Subject: one\r\n\r\n.leading dot\r\n");
        assert_eq!(messages[1].raw, "second\r\n");
    }

    #[tokio::test]
    async fn commands_out_of_order_are_refused_and_nothing_is_kept() {
        let server = FaultSmtp::start().await.unwrap();
        let mut client = Client::connect(&server).await;

        assert_eq!(client.command("MAIL FROM:<a@example.org>").await, 503);
        assert_eq!(client.command("HELO client.test").await, 250);
        assert_eq!(client.command("RCPT TO:<b@example.org>").await, 503);
        assert_eq!(client.command("MAIL FROM:<a@example.org>").await, 250);
        assert_eq!(client.command("DATA").await, 554);
        assert_eq!(client.command("MAIL FROM a@example.org").await, 503);
        assert_eq!(client.command("RSET").await, 250);
        assert_eq!(client.command("MAIL FROM a@example.org").await, 501);
        assert_eq!(
            client.command("MAIL FROM:<a@x> SIZE=99999999999").await,
            552
        );
        assert_eq!(client.command("VRFY b@example.org").await, 500);
        assert!(server.messages().is_empty());
    }

    #[tokio::test]
    async fn each_recipient_is_answered_by_its_rule() {
        let server = FaultSmtp::start().await.unwrap();
        server.refuse("gone@example.org", 550, "5.1.1 no such user");
        server.defer("busy@example.org", 451, 2);
        let mut client = Client::connect(&server).await;
        assert_eq!(client.command("EHLO client.test").await, 250);
        assert_eq!(client.command("MAIL FROM:<a@example.org>").await, 250);

        assert_eq!(client.command("RCPT TO:<Gone@example.org>").await, 550);
        for expected in [451, 451, 250] {
            assert_eq!(client.command("RCPT TO:<busy@example.org>").await, expected);
        }
        assert_eq!(client.command("RCPT TO:<fine@example.org>").await, 250);
        assert_eq!(client.command("DATA").await, 354);
        client.send("hello\r\n.\r\n").await;
        assert_eq!(client.reply().await.0, 250);

        let messages = server.messages();
        assert_eq!(
            messages[0].recipients,
            ["busy@example.org", "fine@example.org"]
        );
        let gone = server.answers_to("gone@example.org");
        assert_eq!(gone.len(), 1);
        assert_eq!(
            (gone[0].code, gone[0].text.as_str()),
            (Some(550), "5.1.1 no such user")
        );
        let busy: Vec<_> = server
            .answers_to("busy@example.org")
            .iter()
            .map(|a| (a.stage, a.code))
            .collect();
        assert_eq!(
            busy,
            [
                (Stage::Rcpt, Some(451)),
                (Stage::Rcpt, Some(451)),
                (Stage::Rcpt, Some(250)),
                (Stage::Data, Some(250)),
            ]
        );
    }

    #[tokio::test]
    async fn a_dropped_recipient_gets_no_answer_after_its_data_and_is_not_kept() {
        let server = FaultSmtp::start().await.unwrap();
        server.drop_after_data("lost@example.org");
        let mut client = Client::connect(&server).await;
        assert_eq!(client.command("EHLO client.test").await, 250);
        assert_eq!(client.command("MAIL FROM:<a@example.org>").await, 250);
        assert_eq!(client.command("RCPT TO:<lost@example.org>").await, 250);
        assert_eq!(client.command("DATA").await, 354);

        client.send("hello\r\n.\r\n").await;
        let mut rest = Vec::new();
        client.reader.read_to_end(&mut rest).await.unwrap();

        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
        assert!(server.messages().is_empty());
        let answers = server.answers_to("lost@example.org");
        assert_eq!(
            answers.last().map(|a| (a.stage, a.code)),
            Some((Stage::Data, None))
        );
    }
}
