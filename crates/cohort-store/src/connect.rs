//! Connect (`../shared/spec/connect.md` §1–2): pairing requests from store
//! plugins, the installations they become, the commands Cohort queues for
//! them, and the browser sessions of the authorize page (kept generic so the
//! admin UI can reuse them).
//!
//! Poll secrets, installation tokens and session secrets are stored as
//! SHA-256 digests and verified in constant time. The signing secret is
//! stored as is: Cohort must read it to sign its own requests to the store
//! (connect.md §5). Encrypting it at rest is a later issue.

use crate::row::{map_rows, RowExt};
use cohort_domain::connect::{
    CommandKind, CommandStatus, InstallationMode, InstallationStatus, PairingStatus, Platform,
};
use cohort_domain::ids::{new_id, random_token, OrgId, SourceId, UserId};
use cohort_domain::secrets::{self, IssuedSecret};
use rand::Rng;
use sqlx::any::AnyRow;

use crate::issued::{verified_row, ExpiringSecrets, SecretLookup};
use crate::orgs::Organisation;
use crate::users::{Role, User};
use crate::{now_micros, Db, StoreError};

/// How long a pairing waits for the merchant's decision, and then for the
/// plugin to collect the approved token.
pub const PAIRING_LIFETIME_MICROS: i64 = 15 * 60 * 1_000_000;
/// The prefix of poll secrets (`cps_…`).
pub const POLL_SECRET_KIND: &str = "cps";
/// The prefix of installation tokens (`cin_<id>_<secret>`).
pub const INSTALLATION_TOKEN_KIND: &str = "cin";
/// The prefix of browser session secrets (`ses_<id>_<secret>`).
pub const SESSION_KIND: &str = "ses";
const SESSIONS: ExpiringSecrets = ExpiringSecrets {
    kind: SESSION_KIND,
    table: "web_sessions",
    owner_column: "user_id",
};
/// Upper-case consonants (RFC 8628's set): no vowels, so no words, and no
/// letter that looks like a digit (O, I).
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// A short code the merchant compares between WordPress and Cohort, such as
/// `WDJB-MJHT`.
pub fn new_user_code() -> String {
    let mut rng = rand::thread_rng();
    let mut code = String::with_capacity(9);
    for i in 0..8 {
        if i == 4 {
            code.push('-');
        }
        code.push(USER_CODE_ALPHABET[rng.gen_range(0..USER_CODE_ALPHABET.len())] as char);
    }
    code
}

/// What a plugin sends to start pairing, already validated.
#[derive(Debug, Clone)]
pub struct NewPairing {
    pub store_url: String,
    pub site_name: String,
    pub platform: Platform,
    pub plugin_version: String,
    pub wp_version: String,
    pub wc_version: Option<String>,
    pub php_version: String,
    pub currency: Option<String>,
    pub timezone: String,
    pub return_url: String,
}

#[derive(Debug, Clone)]
pub struct Pairing {
    pub id: String,
    pub org_id: Option<OrgId>,
    pub user_code: String,
    pub store: NewPairing,
    /// Its expiry is `expires_at`, not a status.
    pub status: PairingStatus,
    pub installation_id: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Pairing {
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at <= now
    }
}

/// The answer to a poll.
pub enum PollOutcome {
    NotFound,
    /// The poll secret does not match.
    Unauthorized,
    Pending,
    /// Approved, and this poll is the one that collects the secrets.
    Approved(Box<ClaimedInstallation>),
    Claimed,
    Expired,
    Denied,
}

/// The secrets handed to the plugin once.
pub struct ClaimedInstallation {
    pub installation_id: String,
    pub installation_token: String,
    pub signing_secret: String,
    pub write_key: String,
    pub organisation: Organisation,
}

impl std::fmt::Debug for ClaimedInstallation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedInstallation")
            .field("installation_id", &self.installation_id)
            .finish_non_exhaustive()
    }
}

/// What approving or denying a pairing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionOutcome {
    Approved {
        installation_id: String,
        return_url: String,
    },
    Denied {
        return_url: String,
    },
    Expired {
        return_url: String,
    },
    AlreadyDecided,
    NotFound,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Installation {
    pub id: String,
    pub org_id: OrgId,
    pub source_id: String,
    pub store_url: String,
    pub site_name: String,
    pub platform: Platform,
    pub mode: InstallationMode,
    pub plugin_version: String,
    pub wp_version: String,
    pub wc_version: Option<String>,
    pub php_version: String,
    pub currency: Option<String>,
    pub timezone: String,
    pub status: InstallationStatus,
    pub created_at: i64,
    pub connected_at: Option<i64>,
    pub disconnected_at: Option<i64>,
    pub last_heartbeat_at: Option<i64>,
    pub reported_store_url: Option<String>,
    pub outbox_depth: Option<i64>,
    pub failures_24h: Option<i64>,
    pub last_error: Option<String>,
}

/// A validated heartbeat. `None` for `site_name`, `timezone` and `store_url`
/// keeps the stored value; the other optional fields are stored as sent.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub plugin_version: String,
    pub wp_version: String,
    pub wc_version: Option<String>,
    pub php_version: String,
    pub store_url: Option<String>,
    pub site_name: Option<String>,
    pub currency: Option<String>,
    pub timezone: Option<String>,
    pub outbox_depth: Option<i64>,
    pub failures_24h: Option<i64>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Command {
    pub id: String,
    pub kind: CommandKind,
    /// JSON object text.
    pub params: String,
    pub status: CommandStatus,
    pub requested_at: i64,
    pub delivered_at: Option<i64>,
    pub acked_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// JSON object text.
    pub counts: Option<String>,
    pub error: Option<String>,
}

/// A validated acknowledgement.
#[derive(Debug, Clone)]
pub struct Ack {
    /// `Done` or `Failed`.
    pub status: CommandStatus,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub counts: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct InstallationSummary {
    pub installation: Installation,
    pub commands_pending: i64,
    pub last_command: Option<Command>,
}

const PAIRING_COLUMNS: &str = "id, org_id, user_code, store_url, site_name, platform, plugin_version, wp_version, \
     wc_version, php_version, currency, timezone, return_url, status, installation_id, created_at, expires_at";

const INSTALLATION_COLUMNS: &str = "id, org_id, source_id, store_url, site_name, platform, plugin_version, wp_version, \
     wc_version, php_version, currency, timezone, status, created_at, connected_at, disconnected_at, \
     last_heartbeat_at, reported_store_url, outbox_depth, failures_24h, last_error, mode";

const COMMAND_COLUMNS: &str =
    "id, kind, params, status, requested_at, delivered_at, acked_at, started_at, finished_at, counts, error";

fn pairing_from_row(r: &AnyRow) -> Result<Pairing, StoreError> {
    Ok(Pairing {
        id: r.col("id")?,
        org_id: r
            .col::<Option<String>, _>("org_id")?
            .map(OrgId::from_stored),
        user_code: r.col("user_code")?,
        store: NewPairing {
            store_url: r.col("store_url")?,
            site_name: r.col("site_name")?,
            platform: r.col_parsed("platform")?,
            plugin_version: r.col("plugin_version")?,
            wp_version: r.col("wp_version")?,
            wc_version: r.col("wc_version")?,
            php_version: r.col("php_version")?,
            currency: r.col("currency")?,
            timezone: r.col("timezone")?,
            return_url: r.col("return_url")?,
        },
        status: r.col_parsed("status")?,
        installation_id: r.col("installation_id")?,
        created_at: r.col("created_at")?,
        expires_at: r.col("expires_at")?,
    })
}

fn installation_from_row(r: &AnyRow) -> Result<Installation, StoreError> {
    Ok(Installation {
        id: r.col("id")?,
        org_id: OrgId::from_stored(r.col::<String, _>("org_id")?),
        source_id: r.col("source_id")?,
        store_url: r.col("store_url")?,
        site_name: r.col("site_name")?,
        platform: r.col_parsed("platform")?,
        mode: r.col_parsed("mode")?,
        plugin_version: r.col("plugin_version")?,
        wp_version: r.col("wp_version")?,
        wc_version: r.col("wc_version")?,
        php_version: r.col("php_version")?,
        currency: r.col("currency")?,
        timezone: r.col("timezone")?,
        status: r.col_parsed("status")?,
        created_at: r.col("created_at")?,
        connected_at: r.col("connected_at")?,
        disconnected_at: r.col("disconnected_at")?,
        last_heartbeat_at: r.col("last_heartbeat_at")?,
        reported_store_url: r.col("reported_store_url")?,
        outbox_depth: r.col("outbox_depth")?,
        failures_24h: r.col("failures_24h")?,
        last_error: r.col("last_error")?,
    })
}

fn command_from_row(r: &AnyRow) -> Result<Command, StoreError> {
    Ok(Command {
        id: r.col("id")?,
        kind: r.col_parsed("kind")?,
        params: r.col("params")?,
        status: r.col_parsed("status")?,
        requested_at: r.col("requested_at")?,
        delivered_at: r.col("delivered_at")?,
        acked_at: r.col("acked_at")?,
        started_at: r.col("started_at")?,
        finished_at: r.col("finished_at")?,
        counts: r.col("counts")?,
        error: r.col("error")?,
    })
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

pub(crate) async fn queue_command(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &OrgId,
    installation_id: &str,
    kind: CommandKind,
    now: i64,
) -> Result<String, StoreError> {
    let id = new_id("cmd");
    sqlx::query(
        "INSERT INTO connect_commands (id, org_id, installation_id, kind, params, status, requested_at) \
         VALUES ($1, $2, $3, $4, '{}', 'pending', $5)",
    )
    .bind(&id)
    .bind(org.as_str())
    .bind(installation_id)
    .bind(kind.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// The store's source: the one its previous installation (of either mode)
/// used, if it still exists in this organisation, else a new one named
/// `name`.
pub(crate) async fn store_source(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &OrgId,
    store_url: &str,
    name: &str,
    now: i64,
) -> Result<String, StoreError> {
    let previous = sqlx::query(
        "SELECT s.id FROM connect_installations i JOIN sources s ON s.id = i.source_id AND s.org_id = i.org_id \
         WHERE i.org_id = $1 AND i.store_url = $2 ORDER BY i.created_at DESC, i.id DESC LIMIT 1",
    )
    .bind(org.as_str())
    .bind(store_url)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(r) = previous {
        return r.col::<String, _>("id");
    }
    let source_id = SourceId::generate();
    sqlx::query(
        "INSERT INTO sources (id, org_id, name, write_key, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(source_id.as_str())
    .bind(org.as_str())
    .bind(name)
    .bind(format!("wk_{}", random_token(32)))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(source_id.as_str().to_owned())
}

/// Marks the earlier installations of `store_url` in `org` (either mode)
/// replaced by `installation_id` (their tokens stop working) and cancels
/// their pending commands.
pub(crate) async fn replace_store_installations(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &OrgId,
    store_url: &str,
    installation_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE connect_installations SET status = 'replaced', replaced_by = $1, disconnected_at = $2 \
         WHERE org_id = $3 AND store_url = $4 AND status IN ('awaiting_plugin', 'connected')",
    )
    .bind(installation_id)
    .bind(now)
    .bind(org.as_str())
    .bind(store_url)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE connect_commands SET status = 'cancelled' WHERE org_id = $1 AND status = 'pending' \
         AND installation_id IN (SELECT id FROM connect_installations WHERE org_id = $1 AND replaced_by = $2)",
    )
    .bind(org.as_str())
    .bind(installation_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Db {
    // ----- pairings ---------------------------------------------------------

    /// Records a pairing request; the returned poll secret is the only copy.
    pub async fn create_pairing(&self, new: &NewPairing) -> Result<(Pairing, String), StoreError> {
        let poll_secret = format!("{POLL_SECRET_KIND}_{}", random_token(40));
        let now = now_micros();
        let pairing = Pairing {
            id: new_id("pair"),
            org_id: None,
            user_code: new_user_code(),
            store: new.clone(),
            status: PairingStatus::Pending,
            installation_id: None,
            created_at: now,
            expires_at: now + PAIRING_LIFETIME_MICROS,
        };
        sqlx::query(
            "INSERT INTO connect_pairings (id, poll_secret_digest, user_code, store_url, site_name, platform, \
             plugin_version, wp_version, wc_version, php_version, currency, timezone, return_url, status, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'pending', $14, $15)",
        )
        .bind(&pairing.id)
        .bind(secrets::digest(&poll_secret))
        .bind(&pairing.user_code)
        .bind(&new.store_url)
        .bind(&new.site_name)
        .bind(new.platform.as_str())
        .bind(&new.plugin_version)
        .bind(&new.wp_version)
        .bind(new.wc_version.as_deref())
        .bind(&new.php_version)
        .bind(new.currency.as_deref())
        .bind(&new.timezone)
        .bind(&new.return_url)
        .bind(pairing.created_at)
        .bind(pairing.expires_at)
        .execute(self.pool())
        .await?;
        Ok((pairing, poll_secret))
    }

    pub async fn find_pairing(&self, id: &str) -> Result<Option<Pairing>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PAIRING_COLUMNS} FROM connect_pairings WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(pairing_from_row).transpose()
    }

    /// Answers a plugin's poll. The approved secrets are minted by the one
    /// poll that moves the pairing from approved to claimed, so they are
    /// never stored in a readable form and are handed out exactly once.
    pub async fn poll_pairing(
        &self,
        id: &str,
        presented_secret: &str,
    ) -> Result<PollOutcome, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PAIRING_COLUMNS}, poll_secret_digest FROM connect_pairings WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(PollOutcome::NotFound);
        };
        if !secrets::verify(
            presented_secret,
            &row.col::<String, _>("poll_secret_digest")?,
        ) {
            return Ok(PollOutcome::Unauthorized);
        }
        let pairing = pairing_from_row(&row)?;
        let now = now_micros();
        match pairing.status {
            PairingStatus::Claimed => return Ok(PollOutcome::Claimed),
            PairingStatus::Denied => return Ok(PollOutcome::Denied),
            _ if pairing.is_expired(now) => return Ok(PollOutcome::Expired),
            PairingStatus::Pending => return Ok(PollOutcome::Pending),
            PairingStatus::Approved => {}
        }
        let (Some(org), Some(installation_id)) =
            (pairing.org_id.clone(), pairing.installation_id.clone())
        else {
            return Ok(PollOutcome::Expired);
        };
        let mut tx = self.begin_write().await?;
        let claimed = sqlx::query(
            "UPDATE connect_pairings SET status = 'claimed', claimed_at = $1 WHERE id = $2 AND status = 'approved'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            return Ok(PollOutcome::Claimed);
        }
        let token = IssuedSecret::issue(INSTALLATION_TOKEN_KIND);
        let signing_secret = random_token(64);
        let connected = sqlx::query(
            "UPDATE connect_installations SET status = 'connected', token_id = $1, token_digest = $2, \
             signing_secret = $3, connected_at = $4 WHERE id = $5 AND org_id = $6 AND status = 'awaiting_plugin'",
        )
        .bind(&token.id)
        .bind(&token.digest)
        .bind(&signing_secret)
        .bind(now)
        .bind(&installation_id)
        .bind(org.as_str())
        .execute(&mut *tx)
        .await?;
        if connected.rows_affected() != 1 {
            // Replaced by a newer approval for the same store before the
            // plugin collected it: this pairing is spent.
            tx.rollback().await?;
            return Ok(PollOutcome::Expired);
        }
        let row = sqlx::query(
            "SELECT s.write_key, o.id AS org_id, o.name AS org_name, o.created_at AS org_created_at \
             FROM connect_installations i JOIN sources s ON s.id = i.source_id AND s.org_id = i.org_id \
             JOIN organisations o ON o.id = i.org_id WHERE i.id = $1 AND i.org_id = $2",
        )
        .bind(&installation_id)
        .bind(org.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(PollOutcome::Approved(Box::new(ClaimedInstallation {
            installation_id,
            installation_token: token.reveal().to_owned(),
            signing_secret,
            write_key: row.col("write_key")?,
            organisation: Organisation {
                id: OrgId::from_stored(row.col::<String, _>("org_id")?),
                name: row.col("org_name")?,
                created_at: row.col("org_created_at")?,
            },
        })))
    }

    /// Approves a pending pairing for `org`: finds or creates the store's
    /// source, replaces any earlier installation of the same store in `org`
    /// (its token stops working), creates the installation awaiting its
    /// plugin, and queues the initial sync for a WooCommerce store. The
    /// plugin then has a fresh 15 minutes to collect the token.
    pub async fn approve_pairing(
        &self,
        id: &str,
        org: &OrgId,
        user: &UserId,
    ) -> Result<DecisionOutcome, StoreError> {
        let now = now_micros();
        let installation_id = new_id("ins");
        let mut tx = self.begin_write().await?;
        let decided = sqlx::query(
            "UPDATE connect_pairings SET status = 'approved', org_id = $1, decided_by = $2, decided_at = $3, \
             expires_at = $4, installation_id = $5 WHERE id = $6 AND status = 'pending' AND expires_at > $3",
        )
        .bind(org.as_str())
        .bind(user.as_str())
        .bind(now)
        .bind(now + PAIRING_LIFETIME_MICROS)
        .bind(&installation_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if decided.rows_affected() != 1 {
            tx.rollback().await?;
            return self.undecidable(id, now).await;
        }
        let row = sqlx::query(&format!(
            "SELECT {PAIRING_COLUMNS} FROM connect_pairings WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let pairing = pairing_from_row(&row)?;
        let store = &pairing.store;

        let label = if store.site_name.trim().is_empty() {
            store.store_url.as_str()
        } else {
            store.site_name.trim()
        };
        let source_id = store_source(
            &mut tx,
            org,
            &store.store_url,
            &format!("{label} ({})", store.platform),
            now,
        )
        .await?;

        replace_store_installations(&mut tx, org, &store.store_url, &installation_id, now).await?;
        sqlx::query(
            "INSERT INTO connect_installations (id, org_id, pairing_id, source_id, store_url, site_name, platform, \
             plugin_version, wp_version, wc_version, php_version, currency, timezone, status, approved_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'awaiting_plugin', $14, $15)",
        )
        .bind(&installation_id)
        .bind(org.as_str())
        .bind(id)
        .bind(&source_id)
        .bind(&store.store_url)
        .bind(&store.site_name)
        .bind(store.platform.as_str())
        .bind(&store.plugin_version)
        .bind(&store.wp_version)
        .bind(store.wc_version.as_deref())
        .bind(&store.php_version)
        .bind(store.currency.as_deref())
        .bind(&store.timezone)
        .bind(user.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if store.platform == Platform::Woocommerce {
            queue_command(&mut tx, org, &installation_id, CommandKind::SyncStore, now).await?;
        }
        tx.commit().await?;
        Ok(DecisionOutcome::Approved {
            installation_id,
            return_url: store.return_url.clone(),
        })
    }

    /// Denies a pending pairing: its next poll answers `410 denied`.
    pub async fn deny_pairing(
        &self,
        id: &str,
        user: &UserId,
    ) -> Result<DecisionOutcome, StoreError> {
        let now = now_micros();
        let decided = sqlx::query(
            "UPDATE connect_pairings SET status = 'denied', decided_by = $1, decided_at = $2 \
             WHERE id = $3 AND status = 'pending' AND expires_at > $2",
        )
        .bind(user.as_str())
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        if decided.rows_affected() != 1 {
            return self.undecidable(id, now).await;
        }
        let pairing = self
            .find_pairing(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("pairing {id:?}")))?;
        Ok(DecisionOutcome::Denied {
            return_url: pairing.store.return_url,
        })
    }

    /// Why a pairing could not be decided.
    async fn undecidable(&self, id: &str, now: i64) -> Result<DecisionOutcome, StoreError> {
        Ok(match self.find_pairing(id).await? {
            None => DecisionOutcome::NotFound,
            Some(p) if p.status == PairingStatus::Pending && p.is_expired(now) => {
                DecisionOutcome::Expired {
                    return_url: p.store.return_url,
                }
            }
            Some(_) => DecisionOutcome::AlreadyDecided,
        })
    }

    // ----- installations ----------------------------------------------------

    /// The connected installation a presented token belongs to. Tokens of
    /// disconnected or replaced installations match nothing.
    pub async fn verify_installation_token(
        &self,
        presented: &str,
    ) -> Result<Option<Installation>, StoreError> {
        let sql = format!(
            "SELECT {INSTALLATION_COLUMNS}, token_digest AS secret_digest FROM connect_installations \
             WHERE token_id = $1 AND status = 'connected'"
        );
        let lookup = SecretLookup {
            kind: INSTALLATION_TOKEN_KIND,
            sql: &sql,
            live_at: None,
        };
        verified_row(self, lookup, presented)
            .await?
            .as_ref()
            .map(installation_from_row)
            .transpose()
    }

    /// The secret Cohort signs its requests to the store with (connect.md §5).
    pub async fn installation_signing_secret(
        &self,
        org: &OrgId,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT signing_secret FROM connect_installations WHERE org_id = $1 AND id = $2",
        )
        .bind(org.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(r) => r.col("signing_secret")?,
            None => None,
        })
    }

    /// Stores a heartbeat; returns the number of pending commands.
    pub async fn record_heartbeat(
        &self,
        org: &OrgId,
        id: &str,
        beat: &Heartbeat,
    ) -> Result<i64, StoreError> {
        sqlx::query(
            "UPDATE connect_installations SET last_heartbeat_at = $1, plugin_version = $2, wp_version = $3, \
             wc_version = $4, php_version = $5, reported_store_url = COALESCE($6, reported_store_url), \
             site_name = COALESCE($7, site_name), currency = $8, timezone = COALESCE($9, timezone), \
             outbox_depth = $10, failures_24h = $11, last_error = $12 WHERE org_id = $13 AND id = $14",
        )
        .bind(now_micros())
        .bind(&beat.plugin_version)
        .bind(&beat.wp_version)
        .bind(beat.wc_version.as_deref())
        .bind(&beat.php_version)
        .bind(beat.store_url.as_deref())
        .bind(beat.site_name.as_deref())
        .bind(beat.currency.as_deref())
        .bind(beat.timezone.as_deref())
        .bind(beat.outbox_depth)
        .bind(beat.failures_24h)
        .bind(beat.last_error.as_deref())
        .bind(org.as_str())
        .bind(id)
        .execute(self.pool())
        .await?;
        self.count_pending_commands(org, id).await
    }

    pub async fn count_pending_commands(
        &self,
        org: &OrgId,
        installation_id: &str,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM connect_commands WHERE org_id = $1 AND installation_id = $2 AND status = 'pending'",
        )
        .bind(org.as_str())
        .bind(installation_id)
        .fetch_one(self.pool())
        .await?;
        row.col("n")
    }

    /// The installation's pending commands, oldest first; marks them
    /// delivered (the first time). They stay pending until acknowledged.
    pub async fn pending_commands(
        &self,
        org: &OrgId,
        installation_id: &str,
    ) -> Result<Vec<Command>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COMMAND_COLUMNS} FROM connect_commands WHERE org_id = $1 AND installation_id = $2 \
             AND status = 'pending' ORDER BY requested_at, id"
        ))
        .bind(org.as_str())
        .bind(installation_id)
        .fetch_all(self.pool())
        .await?;
        sqlx::query(
            "UPDATE connect_commands SET delivered_at = $1 WHERE org_id = $2 AND installation_id = $3 \
             AND status = 'pending' AND delivered_at IS NULL",
        )
        .bind(now_micros())
        .bind(org.as_str())
        .bind(installation_id)
        .execute(self.pool())
        .await?;
        map_rows(&rows, command_from_row)
    }

    /// Records the outcome of a command. A command already acknowledged is
    /// left as it is (a retried ack is harmless); `None` when the
    /// installation has no such command.
    pub async fn ack_command(
        &self,
        org: &OrgId,
        installation_id: &str,
        command_id: &str,
        ack: &Ack,
    ) -> Result<Option<Command>, StoreError> {
        sqlx::query(
            "UPDATE connect_commands SET status = $1, acked_at = $2, started_at = $3, finished_at = $4, counts = $5, \
             error = $6 WHERE org_id = $7 AND installation_id = $8 AND id = $9 AND status = 'pending'",
        )
        .bind(ack.status.as_str())
        .bind(now_micros())
        .bind(ack.started_at)
        .bind(ack.finished_at)
        .bind(ack.counts.as_deref())
        .bind(ack.error.as_deref())
        .bind(org.as_str())
        .bind(installation_id)
        .bind(command_id)
        .execute(self.pool())
        .await?;
        let row = sqlx::query(&format!(
            "SELECT {COMMAND_COLUMNS} FROM connect_commands WHERE org_id = $1 AND installation_id = $2 AND id = $3"
        ))
        .bind(org.as_str())
        .bind(installation_id)
        .bind(command_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(command_from_row).transpose()
    }

    /// Disconnects an installation: its token stops working and its pending
    /// commands are cancelled.
    pub async fn disconnect_installation(&self, org: &OrgId, id: &str) -> Result<(), StoreError> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE connect_installations SET status = 'disconnected', disconnected_at = $1 \
             WHERE org_id = $2 AND id = $3 AND status = 'connected'",
        )
        .bind(now)
        .bind(org.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE connect_commands SET status = 'cancelled' WHERE org_id = $1 AND installation_id = $2 AND status = 'pending'",
        )
        .bind(org.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A plain-WordPress installation gains WooCommerce: the platform
    /// changes and an initial `sync_store` is queued. Returns the queued
    /// command's id (`None` when it already was a WooCommerce store).
    pub async fn upgrade_installation(
        &self,
        org: &OrgId,
        id: &str,
        wc_version: &str,
    ) -> Result<Option<String>, StoreError> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let upgraded = sqlx::query(
            "UPDATE connect_installations SET platform = 'woocommerce', wc_version = $1 \
             WHERE org_id = $2 AND id = $3 AND platform <> 'woocommerce'",
        )
        .bind(wc_version)
        .bind(org.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let command = if upgraded.rows_affected() == 1 {
            Some(queue_command(&mut tx, org, id, CommandKind::SyncStore, now).await?)
        } else {
            sqlx::query(
                "UPDATE connect_installations SET wc_version = $1 WHERE org_id = $2 AND id = $3",
            )
            .bind(wc_version)
            .bind(org.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            None
        };
        tx.commit().await?;
        Ok(command)
    }

    /// Asks a connected WooCommerce installation to sync its store: queues a
    /// `sync_store` command, unless one is already pending (then that one is
    /// returned, `false`). `None`: no such connected WooCommerce installation.
    pub async fn request_sync(
        &self,
        org: &OrgId,
        id: &str,
    ) -> Result<Option<(String, bool)>, StoreError> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let platform: Option<String> = sqlx::query_scalar(
            "SELECT platform FROM connect_installations WHERE org_id = $1 AND id = $2 AND status = 'connected'",
        )
        .bind(org.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if platform.as_deref() != Some(Platform::Woocommerce.as_str()) {
            tx.commit().await?;
            return Ok(None);
        }
        let pending: Option<String> = sqlx::query_scalar(
            "SELECT id FROM connect_commands WHERE org_id = $1 AND installation_id = $2 AND kind = 'sync_store' \
             AND status = 'pending' ORDER BY requested_at LIMIT 1",
        )
        .bind(org.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let answer = match pending {
            Some(existing) => (existing, false),
            None => (
                queue_command(&mut tx, org, id, CommandKind::SyncStore, now).await?,
                true,
            ),
        };
        tx.commit().await?;
        Ok(Some(answer))
    }

    /// Every installation of `org`, newest first, with its command status.
    pub async fn list_installations(
        &self,
        org: &OrgId,
    ) -> Result<Vec<InstallationSummary>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {INSTALLATION_COLUMNS} FROM connect_installations WHERE org_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let installation = installation_from_row(row)?;
            let last = sqlx::query(&format!(
                "SELECT {COMMAND_COLUMNS} FROM connect_commands WHERE org_id = $1 AND installation_id = $2 \
                 ORDER BY requested_at DESC, id DESC LIMIT 1"
            ))
            .bind(org.as_str())
            .bind(&installation.id)
            .fetch_optional(self.pool())
            .await?;
            let commands_pending = self.count_pending_commands(org, &installation.id).await?;
            out.push(InstallationSummary {
                installation,
                commands_pending,
                last_command: last.as_ref().map(command_from_row).transpose()?,
            });
        }
        Ok(out)
    }

    // ----- people and browser sessions ---------------------------------------

    pub async fn count_users(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(self.pool())
            .await?;
        row.col("n")
    }

    /// The organisations `user` belongs to, with their role, by name.
    pub async fn memberships_of(
        &self,
        user: &UserId,
    ) -> Result<Vec<(Organisation, Role)>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id, o.name, o.created_at, m.role FROM memberships m JOIN organisations o ON o.id = m.org_id \
             WHERE m.user_id = $1 ORDER BY o.name, o.id",
        )
        .bind(user.as_str())
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, |r| {
            Ok((
                Organisation {
                    id: OrgId::from_stored(r.col::<String, _>("id")?),
                    name: r.col("name")?,
                    created_at: r.col("created_at")?,
                },
                r.col_parsed("role")?,
            ))
        })
    }

    /// Creates the first account of a server that has none, as owner of
    /// every organisation (a "Default" one is created when there is none),
    /// and spends outstanding setup links. `None` when someone already has
    /// an account, including one created a moment earlier by a concurrent
    /// request.
    pub async fn create_first_admin(
        &self,
        email: &str,
        password_hash: &str,
    ) -> Result<Option<User>, StoreError> {
        let now = now_micros();
        let mut tx = self.begin_write().await?;
        let users: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&mut *tx)
            .await?
            .col("n")?;
        if users > 0 {
            return Ok(None);
        }
        let mut orgs: Vec<String> =
            sqlx::query("SELECT id FROM organisations ORDER BY created_at, id")
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.col::<String, _>("id"))
                .collect::<Result<_, _>>()?;
        if orgs.is_empty() {
            let id = OrgId::generate();
            sqlx::query(
                "INSERT INTO organisations (id, name, created_at) VALUES ($1, 'Default', $2)",
            )
            .bind(id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            orgs.push(id.as_str().to_owned());
        }
        let first = OrgId::from_stored(orgs[0].clone());
        let user = crate::users::create_user_in(&mut tx, &first, email, password_hash, Role::Owner)
            .await?;
        let claim = sqlx::query(
            "INSERT INTO first_admin_claim (id, user_id, claimed_at) VALUES (1, $1, $2)",
        )
        .bind(user.id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await;
        match claim {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        for org in &orgs[1..] {
            sqlx::query("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)")
                .bind(org)
                .bind(user.id.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE setup_links SET used_at = $1 WHERE used_at IS NULL")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(user))
    }

    /// Starts a browser session for `user`; the secret is the cookie value.
    pub async fn create_session(
        &self,
        user: &UserId,
        lifetime_micros: i64,
    ) -> Result<IssuedSecret, StoreError> {
        let now = now_micros();
        sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        SESSIONS
            .issue(self, user.as_str(), now, lifetime_micros)
            .await
    }

    /// The user of a live session, from the presented cookie value.
    pub async fn find_session(&self, presented: &str) -> Result<Option<User>, StoreError> {
        let lookup = SecretLookup {
            kind: SESSION_KIND,
            sql: "SELECT s.secret_digest, u.id AS user_id, u.email FROM web_sessions s \
                  JOIN users u ON u.id = s.user_id WHERE s.id = $1 AND s.expires_at > $2",
            live_at: Some(now_micros()),
        };
        let Some(row) = verified_row(self, lookup, presented).await? else {
            return Ok(None);
        };
        Ok(Some(User {
            id: UserId::from_stored(row.col::<String, _>("user_id")?),
            email: row.col("email")?,
        }))
    }

    /// Ends a session (signing out).
    pub async fn delete_session(&self, presented: &str) -> Result<(), StoreError> {
        if let Some((id, _)) = secrets::split_presented(SESSION_KIND, presented) {
            sqlx::query("DELETE FROM web_sessions WHERE id = $1")
                .bind(id)
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_look_like_wdjb_mjht() {
        for _ in 0..100 {
            let code = new_user_code();
            assert_eq!(code.len(), 9);
            assert_eq!(&code[4..5], "-");
            assert!(code
                .chars()
                .filter(|c| *c != '-')
                .all(|c| USER_CODE_ALPHABET.contains(&(c as u8))));
        }
    }
}
