//! Configuration: the commented defaults built into the binary, then
//! `cohort.toml`, then `COHORT_<SECTION>__<KEY>` environment variables.

use std::path::Path;

use anyhow::Context;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The whole commented default file, printed by `cohort default-config`;
/// it is also the first layer of every configuration.
pub const DEFAULT_CONFIG: &str = include_str!("../default-config.toml");

#[derive(Debug, Deserialize)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub collect: CollectConfig,
    pub projection: ProjectionConfig,
    pub destinations: DestinationsConfig,
    pub woocommerce: WooCommerceConfig,
    pub nl: NlConfig,
    pub mail: MailConfig,
    pub log: LogConfig,
}

/// Where Cohort's own mail goes (`[mail]`).
#[derive(Debug, Deserialize)]
pub struct MailConfig {
    pub transport: MailTransport,
    pub outbox_dir: String,
    pub from: String,
    pub bounce_domain: String,
    pub worker_enabled: bool,
    pub max_attempts: u32,
    pub retry_base_seconds: u64,
    pub retry_max_seconds: u64,
    pub batch: u32,
    pub lease_seconds: u64,
    pub soft_bounce_limit: u32,
    pub inbound: InboundConfig,
    pub smtp: SmtpConfig,
}

/// `[mail.inbound]`: the SMTP listener for bounces and complaints.
#[derive(Debug, Deserialize)]
pub struct InboundConfig {
    pub listen: String,
    pub max_message_kb: usize,
}

impl MailConfig {
    /// What the outbox sends with.
    pub fn settings(&self) -> anyhow::Result<cohort_engine::mail::MailSettings> {
        use cohort_engine::mail::{MailSettings, NodeTransport};
        use std::time::Duration;
        let transport = match self.transport {
            MailTransport::Outbox => NodeTransport::Folder(self.outbox_dir.clone().into()),
            MailTransport::Smtp => {
                if self.smtp.host.trim().is_empty() {
                    anyhow::bail!(
                        "invalid configuration: [mail] transport is \"smtp\" but [mail.smtp] host is empty"
                    );
                }
                NodeTransport::Smtp(self.smtp.settings())
            }
        };
        let bounce_domain = match self.bounce_domain.trim() {
            "" => None,
            domain => Some(cohort_domain::mail::normalize_domain(domain).map_err(|e| {
                anyhow::anyhow!("invalid configuration: [mail] bounce_domain: {e}")
            })?),
        };
        Ok(MailSettings {
            from: self.from.clone(),
            transport,
            bounce_domain,
            max_attempts: self.max_attempts.max(1),
            backoff: cohort_jobs::backoff::Backoff {
                base: Duration::from_secs(self.retry_base_seconds.max(1)),
                max: Duration::from_secs(
                    self.retry_max_seconds.max(self.retry_base_seconds.max(1)),
                ),
            },
            batch: self.batch.clamp(1, 10_000),
            lease: Duration::from_secs(self.lease_seconds.max(10)),
            smtp_timeout: Duration::from_secs(self.smtp.timeout_seconds.max(1)),
            soft_bounce_limit: self.soft_bounce_limit.max(1),
        })
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// `.eml` files in `outbox_dir`: the embedded default.
    Outbox,
    Smtp,
}

/// `[mail.smtp]`.
#[derive(Debug, Deserialize)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: String,
    /// `Debug` shows it redacted.
    #[serde(default)]
    pub password: Option<SecretString>,
    pub max_connections: u32,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

impl SmtpConfig {
    pub fn settings(&self) -> cohort_mail::SmtpSettings {
        cohort_mail::SmtpSettings {
            host: self.host.trim().to_owned(),
            port: self.port,
            tls: match self.tls {
                SmtpTls::None => cohort_mail::TlsMode::None,
                SmtpTls::Starttls => cohort_mail::TlsMode::StartTls,
                SmtpTls::Tls => cohort_mail::TlsMode::Tls,
            },
            username: Some(self.username.trim().to_owned()).filter(|u| !u.is_empty()),
            password: self.password.clone(),
            max_connections: self.max_connections.max(1),
            timeout: std::time::Duration::from_secs(self.timeout_seconds.max(1)),
            hello_name: None,
        }
    }
}

/// The optional model natural-language segments ask (`[nl]`).
#[derive(Debug, Deserialize)]
pub struct NlConfig {
    /// An OpenAI-compatible API base (`http://127.0.0.1:8080/v1`); empty:
    /// no model, the offline grammar alone.
    pub endpoint: String,
    pub model: String,
    /// `Debug` shows it redacted.
    #[serde(default)]
    pub api_key: Option<SecretString>,
    pub timeout_seconds: u64,
}

impl NlConfig {
    /// The model client, or `None` when no endpoint is set.
    pub fn rule_model(
        &self,
    ) -> anyhow::Result<Option<std::sync::Arc<cohort_engine::segments::model::RuleModel>>> {
        use cohort_engine::segments::model::{ModelSettings, RuleModel};
        let endpoint = self.endpoint.trim();
        if endpoint.is_empty() {
            return Ok(None);
        }
        let endpoint = url::Url::parse(endpoint)
            .map_err(|e| anyhow::anyhow!("invalid configuration: [nl] endpoint: {e}"))?;
        let model = RuleModel::new(ModelSettings {
            endpoint,
            model: self.model.clone(),
            api_key: self
                .api_key
                .clone()
                .filter(|k| !k.expose_secret().trim().is_empty()),
            timeout: std::time::Duration::from_secs(self.timeout_seconds.max(1)),
        })
        .map_err(|e| anyhow::anyhow!("invalid configuration: [nl] {e}"))?;
        Ok(Some(std::sync::Arc::new(model)))
    }
}

/// The no-plugin WooCommerce worker (`[woocommerce]`).
#[derive(Debug, Deserialize)]
pub struct WooCommerceConfig {
    pub rest_worker_enabled: bool,
    pub poll_interval_ms: u64,
    pub reconcile_interval_seconds: u64,
    pub timeout_seconds: u64,
    pub lease_seconds: u64,
    pub retry_after_seconds: u64,
}

impl WooCommerceConfig {
    /// The worker's options; stores are reached under `outbound`.
    pub fn worker_options(
        &self,
        outbound: cohort_engine::outbound::OutboundPolicy,
    ) -> cohort_engine::woocommerce_rest::worker::RestWorkerOptions {
        use std::time::Duration;
        cohort_engine::woocommerce_rest::worker::RestWorkerOptions {
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(1)),
            reconcile_interval: Duration::from_secs(self.reconcile_interval_seconds.max(1)),
            lease: Duration::from_secs(self.lease_seconds.max(self.timeout_seconds + 1)),
            timeout: Duration::from_secs(self.timeout_seconds.max(1)),
            retry_after: Duration::from_secs(self.retry_after_seconds),
            outbound,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ServerConfig {
    pub listen: String,
    pub public_url: String,
    pub shutdown_grace_seconds: u64,
    pub roles: Vec<Role>,
}

/// What a node does (`[server] roles`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Serves HTTP: collect, connect, the admin API and the UI.
    Http,
    /// Runs the background loops: projection, destinations, the WooCommerce
    /// pull and the job runner.
    Workers,
}

impl ServerConfig {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

#[derive(Debug, Deserialize)]
pub struct DatabaseConfig {
    /// May hold a password: `Debug` shows it redacted.
    pub url: SecretString,
    pub max_connections: u32,
    pub busy_timeout_ms: u64,
    pub sqlite_synchronous: cohort_store::SqliteSynchronous,
}

#[derive(Debug, Deserialize)]
pub struct CollectConfig {
    pub max_message_bytes: usize,
    pub max_request_bytes: usize,
    pub max_batch_messages: usize,
    pub rate_limit_per_source: u32,
    pub queue_capacity: usize,
    pub max_group_events: usize,
    pub writer_tasks: usize,
}

#[derive(Debug, Deserialize)]
pub struct ProjectionConfig {
    pub enabled: bool,
    pub poll_interval_ms: u64,
}

#[derive(Debug, Deserialize)]
pub struct DestinationsConfig {
    pub enabled: bool,
    pub poll_interval_ms: u64,
    pub allow_private_addresses: bool,
    /// Deliveries in flight at once, and of one destination.
    pub concurrency: usize,
    pub per_destination_concurrency: usize,
    /// Per request, in seconds.
    pub timeout_seconds: u64,
    /// How long a delivery claimed by a process that died waits before it
    /// is sent again, in seconds; longer than `timeout_seconds`.
    pub lease_seconds: u64,
    /// Delays before retry 1, 2, … in seconds (±20 % jitter); then `failed`.
    pub retry_schedule_seconds: Vec<u64>,
    /// Where the key that encrypts destination secrets is kept (base64);
    /// created with mode 0600 on first start when missing.
    pub key_file: String,
    /// The key itself (base64 of 32 bytes), instead of `key_file`.
    #[serde(default)]
    pub key: Option<SecretString>,
}

#[derive(Debug, Deserialize)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// Loads the layers. `explicit` is a file the user named (it must exist);
    /// otherwise `cohort.toml` is read when present.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Toml::string(DEFAULT_CONFIG));
        match explicit {
            Some(path) => {
                anyhow::ensure!(
                    path.exists(),
                    "configuration file {} does not exist",
                    path.display()
                );
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("cohort.toml")),
        }
        figment = figment.merge(Env::prefixed("COHORT_").split("__"));
        let config: Self = figment.extract().context("invalid configuration")?;
        anyhow::ensure!(
            !config.server.roles.is_empty(),
            "invalid configuration: [server] roles is empty; name \"http\" and/or \"workers\""
        );
        Ok(config)
    }

    pub fn database_url(&self) -> &str {
        self.database.url.expose_secret()
    }

    pub fn db_options(&self) -> cohort_store::DbOptions {
        cohort_store::DbOptions {
            max_connections: self.database.max_connections,
            busy_timeout: std::time::Duration::from_millis(self.database.busy_timeout_ms),
            sqlite_synchronous: self.database.sqlite_synchronous,
            ..Default::default()
        }
    }

    pub fn limits(&self) -> cohort_domain::collect::Limits {
        cohort_domain::collect::Limits {
            max_message_bytes: self.collect.max_message_bytes,
            max_request_bytes: self.collect.max_request_bytes,
            max_batch_messages: self.collect.max_batch_messages,
        }
    }

    /// The one outbound policy of every client (destinations, stores' REST
    /// APIs, their discount endpoints): `destinations.allow_private_addresses`
    /// lets them reach private, loopback and link-local addresses.
    pub fn outbound_policy(&self) -> cohort_engine::outbound::OutboundPolicy {
        cohort_engine::outbound::OutboundPolicy {
            allow_private_addresses: self.destinations.allow_private_addresses,
        }
    }

    /// The key destination secrets are encrypted with: `destinations.key`,
    /// else the contents of `destinations.key_file`, which is created (mode
    /// 0600) with a random key when missing.
    pub fn destinations_key(&self) -> anyhow::Result<cohort_store::destinations::SecretsKey> {
        use cohort_store::destinations::SecretsKey;
        if let Some(key) = &self.destinations.key {
            return SecretsKey::from_base64(key.expose_secret())
                .context("invalid destinations.key");
        }
        let path = Path::new(&self.destinations.key_file);
        if path.exists() {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            return SecretsKey::from_base64(&text)
                .with_context(|| format!("invalid key in {}", path.display()));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let key = SecretsKey::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        std::io::Write::write_all(&mut file, format!("{}\n", key.to_base64()).as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        tracing::info!(path = %path.display(), "created the destinations key; back it up with the database");
        Ok(key)
    }

    /// The base of links Cohort prints: `public_url`, else `http://<listen>`.
    pub fn base_url(&self, bound: Option<std::net::SocketAddr>) -> String {
        if !self.server.public_url.is_empty() {
            return self.server.public_url.trim_end_matches('/').to_owned();
        }
        match bound {
            Some(addr) => format!("http://{addr}"),
            None => format!("http://{}", self.server.listen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // figment's Jail closures return figment's own (large) error type.
    #[allow(clippy::result_large_err)]
    #[test]
    fn defaults_parse_and_env_overrides_them_without_leaking_secrets() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("cohort.toml", "[server]\nlisten = \"127.0.0.1:9999\"\n")?;
            jail.set_env(
                "COHORT_DATABASE__URL",
                "postgres://cohort:hunter2@db/cohort",
            );
            jail.set_env("COHORT_COLLECT__RATE_LIMIT_PER_SOURCE", "50");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(config.server.listen, "127.0.0.1:9999");
            assert_eq!(config.collect.rate_limit_per_source, 50);
            assert_eq!(config.database_url(), "postgres://cohort:hunter2@db/cohort");
            assert!(!format!("{config:?}").contains("hunter2"));
            assert_eq!(config.collect.max_request_bytes, 500 * 1024);
            assert!(!config.destinations.allow_private_addresses);
            Ok(())
        });
    }

    #[allow(clippy::result_large_err)]
    #[test]
    fn the_destinations_key_file_is_created_private_and_reused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("COHORT_DESTINATIONS__KEY_FILE", "keys/secret.key");
            let config = Config::load(None).map_err(|e| e.to_string())?;
            let first = config.destinations_key().map_err(|e| e.to_string())?;
            let again = config.destinations_key().map_err(|e| e.to_string())?;
            assert_eq!(first.to_base64(), again.to_base64());
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(jail.directory().join("keys/secret.key"))
                    .map_err(|e| e.to_string())?
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600);
            }
            jail.set_env("COHORT_DESTINATIONS__KEY", first.to_base64());
            let config = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                config
                    .destinations_key()
                    .map_err(|e| e.to_string())?
                    .to_base64(),
                first.to_base64()
            );
            assert!(!format!("{config:?}").contains(&first.to_base64()));
            Ok(())
        });
    }
}
