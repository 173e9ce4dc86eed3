//! The inbound SMTP listener (`[mail.inbound] listen`): a receiving MTA
//! for bounce and complaint reports only. It takes mail for the addresses
//! `accepts` allows (Cohort's VERP return paths), refuses every other
//! recipient at `RCPT`, and answers `250` after `DATA` only once the
//! handler has recorded the message, so a report the sender saw accepted
//! is never lost; a handler failure is a `451` and the sender tries again.
//!
//! A small server of its own rather than a crate: it needs no relaying,
//! authentication or TLS (the reports come from MTAs over port 25, and a
//! forged one can only name a message id it guessed), and the maintained
//! Rust SMTP servers are either synchronous or frameworks far larger than
//! these few commands (RFC 5321 §4.5.1's minimum, plus `SIZE` and
//! `8BITMIME`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// A message the listener accepted at `DATA`, with the envelope.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub peer: SocketAddr,
    /// The `MAIL FROM` address; empty for a bounce (the null sender).
    pub mail_from: String,
    pub recipients: Vec<String>,
    /// The message as received, dot-unstuffed, lines ending in CRLF.
    pub raw: Vec<u8>,
}

/// The handler's answer to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundVerdict {
    /// Recorded (or deliberately ignored, like an out-of-office reply): `250`.
    Accepted(String),
    /// Refused for good, with the reason: `550`.
    Rejected(String),
    /// Not recorded this time: `451`, the sender retries.
    Failed(String),
}

/// A received message and where its verdict goes.
pub type InboundDelivery = (InboundMessage, oneshot::Sender<InboundVerdict>);

/// How the listener behaves.
#[derive(Clone)]
pub struct InboundSettings {
    /// The name in the greeting and `EHLO` answer.
    pub hostname: String,
    /// The largest message taken (`SIZE`); a larger one is refused with `552`.
    pub max_message_bytes: usize,
    pub max_recipients: usize,
    pub max_connections: usize,
    /// Per command, and per `DATA` line.
    pub idle_timeout: Duration,
    /// Which recipients are taken; the others get `550` at `RCPT`.
    pub accepts: Arc<dyn Fn(&str) -> bool + Send + Sync>,
}

impl std::fmt::Debug for InboundSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundSettings")
            .field("hostname", &self.hostname)
            .field("max_message_bytes", &self.max_message_bytes)
            .finish_non_exhaustive()
    }
}

/// Longest command line (RFC 5321 §4.5.3.1.4 says 512; some MTAs send
/// long parameters).
const MAX_COMMAND_BYTES: u64 = 2048;

/// Serves `listener` until it fails, handing every accepted message to
/// `deliveries`. Each connection runs on its own task.
pub async fn serve(
    listener: TcpListener,
    settings: InboundSettings,
    deliveries: mpsc::Sender<InboundDelivery>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let settings = Arc::new(settings);
    loop {
        let (stream, peer) = listener.accept().await?;
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Too many at once: say so and let the sender come back.
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = stream
                    .write_all(b"421 4.3.2 Too many connections, try again later\r\n")
                    .await;
            });
            continue;
        };
        let settings = settings.clone();
        let deliveries = deliveries.clone();
        tokio::spawn(async move {
            let (read, write) = tokio::io::split(stream);
            if let Err(error) = session(read, write, peer, &settings, &deliveries).await {
                tracing::debug!(%peer, %error, "inbound SMTP session ended");
            }
            drop(permit);
        });
    }
}

/// The envelope of the transaction under way.
#[derive(Default)]
struct Transaction {
    mail_from: Option<String>,
    recipients: Vec<String>,
}

async fn session<R, W>(
    read: R,
    mut write: W,
    peer: SocketAddr,
    settings: &InboundSettings,
    deliveries: &mpsc::Sender<InboundDelivery>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = BufReader::new(read);
    let host = &settings.hostname;
    reply(
        &mut write,
        &format!("220 {host} Cohort ESMTP (bounces only)"),
    )
    .await?;
    let mut greeted = false;
    let mut tx = Transaction::default();
    loop {
        let Some(line) = read_line(&mut reader, MAX_COMMAND_BYTES, settings.idle_timeout).await?
        else {
            return Ok(());
        };
        let Ok(line) = String::from_utf8(line) else {
            reply(&mut write, "500 5.5.2 Command is not text").await?;
            continue;
        };
        let line = line.trim_end_matches(['\r', '\n']);
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                greeted = true;
                tx = Transaction::default();
                let size = settings.max_message_bytes;
                reply(
                    &mut write,
                    &format!(
                        "250-{host}\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE {size}"
                    ),
                )
                .await?;
            }
            "HELO" => {
                greeted = true;
                tx = Transaction::default();
                reply(&mut write, &format!("250 {host}")).await?;
            }
            "MAIL" => {
                if !greeted {
                    reply(&mut write, "503 5.5.1 Say EHLO first").await?;
                } else if tx.mail_from.is_some() {
                    reply(&mut write, "503 5.5.1 Sender already given").await?;
                } else if let Some((address, params)) = path_argument(rest, "FROM:") {
                    if declared_size(params).is_some_and(|s| s > settings.max_message_bytes) {
                        reply(&mut write, "552 5.3.4 Message too big").await?;
                    } else {
                        tx.mail_from = Some(address);
                        reply(&mut write, "250 2.1.0 Ok").await?;
                    }
                } else {
                    reply(&mut write, "501 5.5.4 Syntax: MAIL FROM:<address>").await?;
                }
            }
            "RCPT" => {
                if tx.mail_from.is_none() {
                    reply(&mut write, "503 5.5.1 MAIL first").await?;
                } else if let Some((address, _)) = path_argument(rest, "TO:") {
                    if tx.recipients.len() >= settings.max_recipients {
                        reply(&mut write, "452 4.5.3 Too many recipients").await?;
                    } else if (settings.accepts)(&address) {
                        tx.recipients.push(address);
                        reply(&mut write, "250 2.1.5 Ok").await?;
                    } else {
                        reply(
                            &mut write,
                            "550 5.1.1 This server takes only bounces to Cohort's return paths",
                        )
                        .await?;
                    }
                } else {
                    reply(&mut write, "501 5.5.4 Syntax: RCPT TO:<address>").await?;
                }
            }
            "DATA" => {
                if tx.recipients.is_empty() {
                    reply(&mut write, "503 5.5.1 RCPT first").await?;
                    continue;
                }
                reply(&mut write, "354 End data with <CR><LF>.<CR><LF>").await?;
                let body = read_data(&mut reader, settings).await?;
                let envelope = std::mem::take(&mut tx);
                let Some(raw) = body else {
                    reply(&mut write, "552 5.3.4 Message too big").await?;
                    continue;
                };
                let message = InboundMessage {
                    peer,
                    mail_from: envelope.mail_from.unwrap_or_default(),
                    recipients: envelope.recipients,
                    raw,
                };
                let answer = match deliver(deliveries, message).await {
                    InboundVerdict::Accepted(why) => format!("250 2.0.0 {why}"),
                    InboundVerdict::Rejected(why) => format!("550 5.7.1 {why}"),
                    InboundVerdict::Failed(why) => format!("451 4.3.0 {why}"),
                };
                reply(&mut write, &one_line(&answer)).await?;
            }
            "RSET" => {
                tx = Transaction::default();
                reply(&mut write, "250 2.0.0 Ok").await?;
            }
            "NOOP" => reply(&mut write, "250 2.0.0 Ok").await?,
            "VRFY" => reply(&mut write, "252 2.1.5 Cannot verify").await?,
            "QUIT" => {
                reply(&mut write, "221 2.0.0 Bye").await?;
                return Ok(());
            }
            "" => reply(&mut write, "500 5.5.2 Empty command").await?,
            _ => reply(&mut write, "502 5.5.1 Command not implemented").await?,
        }
    }
}

async fn deliver(
    deliveries: &mpsc::Sender<InboundDelivery>,
    message: InboundMessage,
) -> InboundVerdict {
    let (answer, verdict) = oneshot::channel();
    if deliveries.send((message, answer)).await.is_err() {
        return InboundVerdict::Failed("Cohort is shutting down".into());
    }
    verdict
        .await
        .unwrap_or_else(|_| InboundVerdict::Failed("the report was not recorded".into()))
}

/// `FROM:<a@b> SIZE=123` → (`a@b`, `SIZE=123`); the null path `<>` gives
/// an empty address.
fn path_argument<'a>(rest: &'a str, keyword: &str) -> Option<(String, &'a str)> {
    let rest = rest.trim_start();
    let head = rest.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = rest[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let (address, params) = rest.split_once('>')?;
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    // A source route (`@a,@b:user@c`, RFC 5321 §4.1.2) is ignored.
    let address = address.rsplit_once(':').map_or(address, |(_, a)| a);
    Some((address.to_owned(), params.trim()))
}

fn declared_size(params: &str) -> Option<usize> {
    params.split_whitespace().find_map(|p| {
        let (key, value) = p.split_once('=')?;
        key.eq_ignore_ascii_case("SIZE")
            .then(|| value.parse().ok())
            .flatten()
    })
}

/// One line, at most `limit` bytes (a longer one is cut there); `None` at
/// the end of the stream. A silent peer times out.
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    limit: u64,
    timeout: Duration,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let read = tokio::time::timeout(
        timeout,
        tokio::io::AsyncReadExt::take(&mut *reader, limit).read_until(b'\n', &mut line),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
    Ok((read > 0).then_some(line))
}

/// The message after `354`, up to the lone dot: `None` when it outgrew
/// the limit (read to its end all the same, so the session goes on).
async fn read_data<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    settings: &InboundSettings,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    let mut too_big = false;
    loop {
        let Some(line) = read_line(reader, 1 << 20, settings.idle_timeout).await? else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed during DATA",
            ));
        };
        let content = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))
            .unwrap_or(&line);
        if content == b"." {
            return Ok((!too_big).then_some(body));
        }
        if too_big {
            continue;
        }
        let content = content.strip_prefix(b".").unwrap_or(content);
        if body.len() + content.len() + 2 > settings.max_message_bytes {
            too_big = true;
            body = Vec::new();
            continue;
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
}

fn one_line(answer: &str) -> String {
    answer
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect()
}

async fn reply<W: AsyncWrite + Unpin>(write: &mut W, text: &str) -> std::io::Result<()> {
    write.write_all(text.as_bytes()).await?;
    write.write_all(b"\r\n").await?;
    write.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_their_parameters() {
        assert_eq!(
            path_argument("FROM:<> SIZE=100", "FROM:"),
            Some((String::new(), "SIZE=100"))
        );
        assert_eq!(
            path_argument("to: <Bounces+msg_1@b.example>", "TO:"),
            Some(("Bounces+msg_1@b.example".into(), ""))
        );
        assert_eq!(
            path_argument("TO:<@relay.example:a@b.example>", "TO:"),
            Some(("a@b.example".into(), ""))
        );
        assert_eq!(path_argument("TO:a@b.example", "TO:"), None);
        assert_eq!(path_argument("FROM:<a b@c>", "FROM:"), None);
        assert_eq!(declared_size("BODY=8BITMIME SIZE=2048"), Some(2048));
        assert_eq!(declared_size("BODY=8BITMIME"), None);
    }
}
