//! A provider's settings as the merchant types them, checked field by
//! field, and the connection test of the providers page.

use std::time::Duration;

use cohort_domain::ids::OrgId;
use cohort_domain::mail::{ProviderTls, RateLimits};
use cohort_mail::{SmtpSender, SmtpSettings, TlsMode};
use cohort_store::mail::{MailProvider, ProviderFields};
use secrecy::SecretString;

use super::{Mail, MailError};

/// A new provider.
#[derive(Debug, Clone, Default)]
pub struct ProviderInput {
    pub name: String,
    pub kind: Option<String>,
    pub host: String,
    pub port: i64,
    pub tls: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub max_connections: Option<i64>,
    pub rate_per_second: Option<i64>,
    pub rate_per_hour: Option<i64>,
    pub default: bool,
}

/// A change: absent fields keep their value; `Some(None)` clears an
/// optional one (the password, a limit).
#[derive(Debug, Clone, Default)]
pub struct ProviderPatch {
    pub name: Option<String>,
    pub host: Option<String>,
    pub port: Option<i64>,
    pub tls: Option<String>,
    pub username: Option<Option<String>>,
    pub password: Option<Option<String>>,
    pub max_connections: Option<i64>,
    pub rate_per_second: Option<Option<i64>>,
    pub rate_per_hour: Option<Option<i64>>,
    pub default: Option<bool>,
}

/// Most connections one provider may hold open.
const MAX_CONNECTIONS: i64 = 100;

fn checked_name(name: &str) -> Result<String, MailError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(MailError::invalid("name", "1 to 100 characters"));
    }
    Ok(name.to_owned())
}

fn checked_host(host: &str) -> Result<String, MailError> {
    let host = host.trim().to_ascii_lowercase();
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !ok {
        return Err(MailError::invalid(
            "host",
            "a host name or IP address (smtp.example.com, 10.0.0.5)",
        ));
    }
    Ok(host)
}

fn checked_port(port: i64) -> Result<u16, MailError> {
    u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| MailError::invalid("port", "1 to 65535"))
}

fn checked_tls(tls: &str) -> Result<ProviderTls, MailError> {
    tls.parse()
        .map_err(|_| MailError::invalid("tls", "one of none, starttls, tls"))
}

fn checked_connections(n: i64) -> Result<u32, MailError> {
    if !(1..=MAX_CONNECTIONS).contains(&n) {
        return Err(MailError::invalid(
            "max_connections",
            format!("1 to {MAX_CONNECTIONS}"),
        ));
    }
    Ok(n as u32)
}

fn checked_rate(field: &'static str, rate: Option<i64>) -> Result<Option<u32>, MailError> {
    match rate {
        None => Ok(None),
        Some(n) if (1..=1_000_000).contains(&n) => Ok(Some(n as u32)),
        Some(_) => Err(MailError::invalid(
            field,
            "1 to 1000000, or null for no limit",
        )),
    }
}

fn checked_optional(
    field: &'static str,
    value: Option<String>,
) -> Result<Option<String>, MailError> {
    match value.filter(|v| !v.is_empty()) {
        Some(v) if v.len() > 500 || v.contains(['\r', '\n']) => Err(MailError::invalid(
            field,
            "one line of at most 500 characters",
        )),
        other => Ok(other),
    }
}

impl ProviderInput {
    fn fields(self) -> Result<ProviderFields, MailError> {
        if let Some(kind) = self.kind.as_deref() {
            if kind != "smtp" {
                return Err(MailError::invalid("kind", "\"smtp\" is the one kind"));
            }
        }
        let username = checked_optional("username", self.username)?;
        let password = checked_optional("password", self.password)?;
        if password.is_some() && username.is_none() {
            return Err(MailError::invalid(
                "username",
                "a password needs a username",
            ));
        }
        Ok(ProviderFields {
            name: checked_name(&self.name)?,
            host: checked_host(&self.host)?,
            port: checked_port(self.port)?,
            tls: checked_tls(&self.tls)?,
            username,
            password,
            max_connections: checked_connections(self.max_connections.unwrap_or(4))?,
            limits: RateLimits {
                per_second: checked_rate("rate_per_second", self.rate_per_second)?,
                per_hour: checked_rate("rate_per_hour", self.rate_per_hour)?,
            },
            is_default: self.default,
        })
    }
}

/// The SMTP settings a stored provider connects with.
pub(crate) fn smtp_settings(provider: &MailProvider, timeout: Duration) -> SmtpSettings {
    SmtpSettings {
        host: provider.host.clone(),
        port: provider.port,
        tls: match provider.tls {
            ProviderTls::None => TlsMode::None,
            ProviderTls::StartTls => TlsMode::StartTls,
            ProviderTls::Tls => TlsMode::Tls,
        },
        username: provider.username.clone(),
        password: provider.password.clone().map(SecretString::from),
        max_connections: provider.max_connections,
        timeout,
        hello_name: None,
    }
}

impl Mail {
    pub async fn create_provider(
        &self,
        org: &OrgId,
        input: ProviderInput,
    ) -> Result<MailProvider, MailError> {
        let fields = input.fields()?;
        self.name_free(org, &fields.name, None).await?;
        Ok(self
            .db
            .create_mail_provider(org, &self.key, &fields)
            .await?)
    }

    pub async fn update_provider(
        &self,
        org: &OrgId,
        id: &str,
        patch: ProviderPatch,
    ) -> Result<MailProvider, MailError> {
        let current = self.provider(org, id).await?;
        let input = ProviderInput {
            name: patch.name.unwrap_or(current.name),
            kind: None,
            host: patch.host.unwrap_or(current.host),
            port: patch.port.unwrap_or(i64::from(current.port)),
            tls: patch.tls.unwrap_or(current.tls.as_str().to_owned()),
            username: patch.username.unwrap_or(current.username),
            password: patch.password.unwrap_or(current.password),
            max_connections: Some(
                patch
                    .max_connections
                    .unwrap_or(i64::from(current.max_connections)),
            ),
            rate_per_second: patch
                .rate_per_second
                .unwrap_or(current.limits.per_second.map(i64::from)),
            rate_per_hour: patch
                .rate_per_hour
                .unwrap_or(current.limits.per_hour.map(i64::from)),
            default: patch.default.unwrap_or(false),
        };
        if patch.default == Some(false) && current.is_default {
            return Err(MailError::invalid(
                "default",
                "make another provider the default instead",
            ));
        }
        let fields = input.fields()?;
        self.name_free(org, &fields.name, Some(id)).await?;
        let updated = self
            .db
            .update_mail_provider(org, &self.key, id, &fields)
            .await?
            .ok_or(MailError::NotFound("provider"))?;
        if let Ok(mut cache) = self.senders.lock() {
            cache.by_provider.remove(id);
        }
        Ok(updated)
    }

    async fn name_free(
        &self,
        org: &OrgId,
        name: &str,
        except: Option<&str>,
    ) -> Result<(), MailError> {
        let taken = self
            .db
            .mail_providers(org, &self.key)
            .await?
            .into_iter()
            .any(|p| p.name == name && Some(p.id.as_str()) != except);
        if taken {
            return Err(MailError::invalid(
                "name",
                format!("a provider named {name:?} exists"),
            ));
        }
        Ok(())
    }

    /// Connects to the provider, says `EHLO` (and authenticates with its
    /// credentials) and `NOOP`: `Err` carries the server's or the
    /// network's answer.
    pub async fn test_provider(
        &self,
        org: &OrgId,
        id: &str,
    ) -> Result<Result<(), String>, MailError> {
        let provider = self.provider(org, id).await?;
        let sender = match SmtpSender::new(&smtp_settings(&provider, self.settings.smtp_timeout)) {
            Ok(sender) => sender,
            Err(e) => return Ok(Err(e.to_string())),
        };
        Ok(sender.test_connection().await)
    }
}
