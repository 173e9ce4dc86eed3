//! SMTP delivery through a pool of lettre connections (`smtp_pool`: sockets
//! with `TCP_NODELAY`; lettre's own pool for implicit TLS), and what an
//! answer means for the outbox: accepted (the `250`, kept as the proof),
//! throttled (the provider asks to slow down: its bucket slows, no attempt
//! is burnt), temporary (retried with backoff), permanent (a hard bounce:
//! the address is suppressed).
//!
//! Throttling is told apart from other temporary failures by code (421,
//! 450, 451, 454 with a rate wording; 421 and 454 always) and by the
//! wordings providers use ("Throttling failure", "Too many requests", "rate
//! limit", "try again later" with a rate cause), as listmonk's users
//! learned when a throttled message was counted as failed and lost.

use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use crate::message::WireMessage;
use crate::smtp_pool::{NoDelayPool, PoolError, PoolSettings};

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain text (a relay on the same host or network).
    None,
    /// `STARTTLS`, required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// One SMTP provider's connection settings.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// Connections kept open at once.
    pub max_connections: u32,
    /// Per SMTP command.
    pub timeout: Duration,
    /// The name Cohort gives in `EHLO`.
    pub hello_name: Option<String>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("max_connections", &self.max_connections)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What the provider answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpOutcome {
    /// `250` to the end of `DATA`: the provider has the message.
    Accepted { answer: String },
    /// Slow down; not the message's fault.
    Throttled { answer: String },
    /// Try again later (4xx, a timeout, a lost connection).
    Temporary { answer: String },
    /// Never (5xx at any stage): a hard bounce.
    Permanent { answer: String },
}

impl SmtpOutcome {
    pub fn answer(&self) -> &str {
        match self {
            SmtpOutcome::Accepted { answer }
            | SmtpOutcome::Throttled { answer }
            | SmtpOutcome::Temporary { answer }
            | SmtpOutcome::Permanent { answer } => answer,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SMTP settings: {0}")]
pub struct SettingsError(String);

/// A pooled connection to one provider.
#[derive(Clone)]
pub struct SmtpSender {
    transport: Transport,
}

#[derive(Clone)]
enum Transport {
    /// Plain and STARTTLS: our sockets, with `TCP_NODELAY`.
    NoDelay(Arc<NoDelayPool>),
    /// Implicit TLS: lettre's pool, which opens the TLS socket itself.
    Lettre(AsyncSmtpTransport<Tokio1Executor>),
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender").finish_non_exhaustive()
    }
}

impl SmtpSender {
    pub fn new(settings: &SmtpSettings) -> Result<Self, SettingsError> {
        if settings.host.trim().is_empty() {
            return Err(SettingsError("host is empty".into()));
        }
        let credentials = match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => Some(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            )),
            _ => None,
        };
        let hello = match &settings.hello_name {
            Some(name) => lettre::transport::smtp::extension::ClientId::Domain(name.clone()),
            None => lettre::transport::smtp::extension::ClientId::default(),
        };
        let parameters =
            || TlsParameters::new(settings.host.clone()).map_err(|e| SettingsError(e.to_string()));
        let transport = match settings.tls {
            TlsMode::None | TlsMode::StartTls => {
                Transport::NoDelay(Arc::new(NoDelayPool::new(PoolSettings {
                    host: settings.host.clone(),
                    port: settings.port,
                    starttls: if settings.tls == TlsMode::StartTls {
                        Some(parameters()?)
                    } else {
                        None
                    },
                    credentials,
                    hello,
                    timeout: settings.timeout,
                    max_connections: settings.max_connections,
                })))
            }
            TlsMode::Tls => {
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
                        .port(settings.port)
                        .tls(Tls::Wrapper(parameters()?))
                        .timeout(Some(settings.timeout))
                        .hello_name(hello)
                        .pool_config(PoolConfig::new().max_size(settings.max_connections.max(1)));
                if let Some(credentials) = credentials {
                    builder = builder.credentials(credentials);
                }
                Transport::Lettre(builder.build())
            }
        };
        Ok(Self { transport })
    }

    /// Sends one message; never an error, always what it means.
    pub async fn send(&self, message: &WireMessage) -> SmtpOutcome {
        let envelope = match (message.mail_from.parse(), message.rcpt_to.parse()) {
            (Ok(from), Ok(to)) => match lettre::address::Envelope::new(Some(from), vec![to]) {
                Ok(envelope) => envelope,
                Err(e) => {
                    return SmtpOutcome::Permanent {
                        answer: format!("invalid envelope: {e}"),
                    }
                }
            },
            _ => {
                return SmtpOutcome::Permanent {
                    answer: "invalid envelope address".into(),
                }
            }
        };
        let sent = match &self.transport {
            Transport::NoDelay(pool) => pool.send(&envelope, &message.bytes).await,
            Transport::Lettre(transport) => transport
                .send_raw(&envelope, &message.bytes)
                .await
                .map_err(PoolError::Smtp),
        };
        match sent {
            Ok(response) => SmtpOutcome::Accepted {
                answer: format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                )
                .trim()
                .to_owned(),
            },
            Err(PoolError::Smtp(e)) => classify(&e),
            Err(PoolError::Other(answer)) => SmtpOutcome::Temporary { answer },
        }
    }

    /// Opens a connection (and signs in) and says `NOOP`: the providers
    /// page's test.
    pub async fn test_connection(&self) -> Result<(), String> {
        match &self.transport {
            Transport::NoDelay(pool) => {
                let mut connection = pool.connect().await.map_err(|e| match e {
                    PoolError::Smtp(e) => e.to_string(),
                    PoolError::Other(answer) => answer,
                })?;
                let alive = connection.test_connected().await;
                let _ = connection.quit().await;
                if alive {
                    Ok(())
                } else {
                    Err("the server did not answer NOOP".into())
                }
            }
            Transport::Lettre(transport) => match transport.test_connection().await {
                Ok(true) => Ok(()),
                Ok(false) => Err("the server did not answer NOOP".into()),
                Err(e) => Err(e.to_string()),
            },
        }
    }
}

/// The meaning of a failed transaction.
fn classify(e: &lettre::transport::smtp::Error) -> SmtpOutcome {
    let answer = e.to_string();
    let code = e.status().map(|c| c.to_string());
    if e.is_permanent() {
        return SmtpOutcome::Permanent { answer };
    }
    if e.is_transient() && is_throttling(code.as_deref(), &answer) {
        return SmtpOutcome::Throttled { answer };
    }
    SmtpOutcome::Temporary { answer }
}

/// Whether a 4xx answer asks the sender to slow down.
pub fn is_throttling(code: Option<&str>, answer: &str) -> bool {
    let lower = answer.to_ascii_lowercase();
    let rate_words = [
        "throttl",
        "too many",
        "rate limit",
        "rate-limit",
        "ratelimit",
        "slow down",
        "exceeded",
        "try again later",
        "temporarily deferred",
    ];
    let worded = rate_words.iter().any(|w| lower.contains(w));
    match code {
        Some("421") | Some("454") => true,
        Some("450") | Some("451") | Some("452") => worded,
        _ => worded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_told_by_code_and_by_providers_wordings() {
        assert!(is_throttling(
            Some("454"),
            "4.7.0 Throttling failure: Maximum sending rate exceeded."
        ));
        assert!(is_throttling(
            Some("421"),
            "4.7.0 Try again later, closing connection."
        ));
        assert!(is_throttling(
            Some("450"),
            "4.2.1 Too many requests, please slow down"
        ));
        assert!(is_throttling(
            Some("451"),
            "4.7.1 Rate limit exceeded for this sender"
        ));
        assert!(!is_throttling(
            Some("450"),
            "4.2.0 Mailbox unavailable: mailbox busy"
        ));
        assert!(!is_throttling(
            Some("451"),
            "4.3.0 Local error in processing"
        ));
    }

    #[test]
    fn the_password_never_shows() {
        let settings = SmtpSettings {
            host: "smtp.example".into(),
            port: 587,
            tls: TlsMode::StartTls,
            username: Some("apikey".into()),
            password: Some("s3cr3t-smtp".to_owned().into()),
            max_connections: 4,
            timeout: Duration::from_secs(10),
            hello_name: None,
        };
        assert!(!format!("{settings:?}").contains("s3cr3t-smtp"));
        assert!(SmtpSender::new(&SmtpSettings {
            host: " ".into(),
            ..settings
        })
        .is_err());
    }
}
