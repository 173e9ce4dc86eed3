//! Pairing requests: a plugin asks, the merchant approves or denies on the
//! authorize page, and the plugin's next poll collects its secrets once.

use cohort_domain::connect::{CommandKind, PairingStatus, Platform};
use cohort_domain::ids::{new_id, random_token, OrgId, UserId};
use cohort_domain::secrets::{self, IssuedSecret};
use rand::Rng;
use sqlx::any::AnyRow;

use super::installations::{
    queue_command, replace_store_installations, store_source, INSTALLATION_TOKEN_KIND,
};
use crate::orgs::Organisation;
use crate::row::RowExt;
use crate::{now_micros, Db, StoreError};

/// How long a pairing waits for the merchant's decision, and then for the
/// plugin to collect the approved token.
pub const PAIRING_LIFETIME_MICROS: i64 = 15 * 60 * 1_000_000;
/// The prefix of poll secrets (`cps_…`).
pub const POLL_SECRET_KIND: &str = "cps";
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

const PAIRING_COLUMNS: &str = "id, org_id, user_code, store_url, site_name, platform, plugin_version, wp_version, \
     wc_version, php_version, currency, timezone, return_url, status, installation_id, created_at, expires_at";

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

impl Db {
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
