//! The durable outbox. A message is a row, committed before any SMTP
//! attempt, unique per (organisation, send key, recipient) so a retried
//! enqueue adds nothing. Workers claim due rows by lease in one statement
//! (`SKIP LOCKED` on PostgreSQL), never holding a transaction while they
//! send; a row whose lease ends while `sending` was interrupted (its worker
//! died) and is sent again with the same Message-ID. Every attempt is kept
//! with the answer it got.

use cohort_domain::ids::{new_id, OrgId};
use cohort_domain::mail::{queued_id, AttemptOutcome, BucketState, OutboxState};
use cohort_domain::suppression::{MailPurpose, SuppressionReason};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use crate::row::{map_rows, RowExt};
use crate::sql::{multi_insert, Bind, Statement};
use crate::{now_micros, Backend, Db, StoreError};

/// A message to enqueue, rendered.
#[derive(Debug, Clone)]
pub struct NewMail {
    /// What it is for (`campaign:cmp_1`, `flow:flw_1:step:2`, `test:…`):
    /// with the recipient, what makes a second enqueue a duplicate.
    pub send_key: String,
    /// Lower-cased.
    pub recipient: String,
    pub purpose: MailPurpose,
    pub from_address: String,
    pub subject: String,
    pub html: String,
    pub text: String,
    pub unsubscribe_https: Option<String>,
    pub unsubscribe_mailto: Option<String>,
    pub profile_id: Option<String>,
    pub user_id: Option<String>,
    pub campaign_id: Option<String>,
    pub flow_id: Option<String>,
    /// `None`: the organisation's default provider at send time.
    pub provider_id: Option<String>,
    pub max_attempts: u32,
    /// The domain of the Message-ID (`<{id}@{domain}>`), usually the
    /// sender's.
    pub message_id_domain: String,
}

/// What an enqueue came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub id: String,
    pub message_id: String,
    /// `false`: the same send key and recipient was enqueued before; that
    /// message stands.
    pub created: bool,
}

/// An outbox row. Listings leave the bodies empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: String,
    pub org_id: OrgId,
    pub send_key: String,
    pub recipient: String,
    pub purpose: MailPurpose,
    pub message_id: String,
    pub from_address: String,
    pub subject: String,
    pub html: String,
    pub text: String,
    pub unsubscribe_https: Option<String>,
    pub unsubscribe_mailto: Option<String>,
    pub profile_id: Option<String>,
    pub user_id: Option<String>,
    pub campaign_id: Option<String>,
    pub flow_id: Option<String>,
    pub provider_id: Option<String>,
    pub state: OutboxState,
    pub attempts: i64,
    pub tries: i64,
    pub max_attempts: i64,
    pub next_attempt_at_us: i64,
    pub lease_owner: Option<String>,
    pub last_error: Option<String>,
    /// The id the provider's relay gave it in its `250` answer, if any.
    pub provider_message_id: Option<String>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub sent_at_us: Option<i64>,
}

/// One attempt as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailAttempt {
    pub attempt: i64,
    pub provider: String,
    pub started_at_us: i64,
    pub finished_at_us: i64,
    pub outcome: AttemptOutcome,
    pub answer: Option<String>,
}

/// What a worker learnt of one claimed message.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub id: String,
    pub org_id: OrgId,
    pub recipient: String,
    /// The lease owner that claimed it: a result whose lease was lost (the
    /// row was reclaimed meanwhile) changes nothing.
    pub owner: String,
    pub provider: String,
    pub started_at_us: i64,
    pub finished_at_us: i64,
    pub outcome: AttemptOutcome,
    pub answer: Option<String>,
    /// Where the message goes next.
    pub state: OutboxState,
    pub next_attempt_at_us: i64,
    /// Whether the attempt is spent (a throttled one is not).
    pub spends_attempt: bool,
    /// Suppress the recipient for this reason with the attempt (a 5xx).
    pub suppress: Option<SuppressionReason>,
}

/// Filters of the outbox listing, newest first.
#[derive(Debug, Clone, Default)]
pub struct OutboxQuery<'a> {
    pub state: Option<OutboxState>,
    pub recipient: Option<&'a str>,
    pub campaign_id: Option<&'a str>,
    pub flow_id: Option<&'a str>,
    /// The (created_at_us, id) of the last row of the previous page.
    pub before: Option<(i64, &'a str)>,
    pub limit: u32,
}

const SUMMARY_COLUMNS: &str =
    "id, org_id, send_key, recipient, purpose, message_id, from_address, \
     subject, unsubscribe_https, unsubscribe_mailto, profile_id, user_id, campaign_id, flow_id, \
     provider_id, state, attempts, tries, max_attempts, next_attempt_at_us, lease_owner, \
     last_error, provider_message_id, created_at_us, updated_at_us, sent_at_us";

fn columns(with_bodies: bool) -> String {
    if with_bodies {
        format!("{SUMMARY_COLUMNS}, html, text_body")
    } else {
        SUMMARY_COLUMNS.to_owned()
    }
}

/// The listing columns, for the other mail modules' selects.
pub(super) fn summary_columns() -> &'static str {
    SUMMARY_COLUMNS
}

/// A row selected with [`summary_columns`].
pub(super) fn summary(row: &AnyRow) -> Result<OutboxMessage, StoreError> {
    message(row, false)
}

fn message(row: &AnyRow, with_bodies: bool) -> Result<OutboxMessage, StoreError> {
    let (html, text) = if with_bodies {
        (row.col("html")?, row.col("text_body")?)
    } else {
        (String::new(), String::new())
    };
    Ok(OutboxMessage {
        id: row.col("id")?,
        org_id: OrgId::from_stored(row.col::<String, _>("org_id")?),
        send_key: row.col("send_key")?,
        recipient: row.col("recipient")?,
        purpose: row.col_parsed("purpose")?,
        message_id: row.col("message_id")?,
        from_address: row.col("from_address")?,
        subject: row.col("subject")?,
        html,
        text,
        unsubscribe_https: row.col("unsubscribe_https")?,
        unsubscribe_mailto: row.col("unsubscribe_mailto")?,
        profile_id: row.col("profile_id")?,
        user_id: row.col("user_id")?,
        campaign_id: row.col("campaign_id")?,
        flow_id: row.col("flow_id")?,
        provider_id: row.col("provider_id")?,
        state: row.col_parsed("state")?,
        attempts: row.col("attempts")?,
        tries: row.col("tries")?,
        max_attempts: row.col("max_attempts")?,
        next_attempt_at_us: row.col("next_attempt_at_us")?,
        lease_owner: row.col("lease_owner")?,
        last_error: row.col("last_error")?,
        provider_message_id: row.col("provider_message_id")?,
        created_at_us: row.col("created_at_us")?,
        updated_at_us: row.col("updated_at_us")?,
        sent_at_us: row.col("sent_at_us")?,
    })
}

const INSERT_HEAD: &str = "INSERT INTO mail_messages (id, org_id, send_key, recipient, purpose, \
     message_id, from_address, subject, html, text_body, unsubscribe_https, unsubscribe_mailto, \
     profile_id, user_id, campaign_id, flow_id, provider_id, state, attempts, tries, max_attempts, \
     next_attempt_at_us, log_pending, created_at_us, updated_at_us)";

/// The row's values (with its fresh id and Message-ID) in `INSERT_HEAD`'s order.
fn insert_values(org: &OrgId, new: &NewMail, id: &str, message_id: &str, now: i64) -> Vec<Bind> {
    let text = |v: &str| Bind::Text(v.to_owned());
    let opt = |v: &Option<String>| Bind::OptText(v.clone());
    vec![
        text(id),
        text(org.as_str()),
        text(&new.send_key),
        text(&new.recipient),
        text(new.purpose.as_str()),
        text(message_id),
        text(&new.from_address),
        text(&new.subject),
        text(&new.html),
        text(&new.text),
        opt(&new.unsubscribe_https),
        opt(&new.unsubscribe_mailto),
        opt(&new.profile_id),
        opt(&new.user_id),
        opt(&new.campaign_id),
        opt(&new.flow_id),
        opt(&new.provider_id),
        text(OutboxState::Queued.as_str()),
        Bind::Int(0),
        Bind::Int(0),
        Bind::Int(i64::from(new.max_attempts.max(1))),
        Bind::Int(now),
        Bind::Int(0),
        Bind::Int(now),
        Bind::Int(now),
    ]
}

fn fresh_ids(new: &NewMail) -> (String, String) {
    let id = new_id("msg");
    let message_id = format!("{id}@{}", new.message_id_domain);
    (id, message_id)
}

impl Db {
    /// Enqueues one message on its own.
    pub async fn enqueue_mail(&self, org: &OrgId, new: &NewMail) -> Result<Enqueued, StoreError> {
        let mut tx = self.begin_write().await?;
        let enqueued = self.enqueue_mail_in(&mut tx, org, new).await?;
        tx.commit().await?;
        Ok(enqueued)
    }

    /// Enqueues inside the caller's transaction: the message exists exactly
    /// when the caller's change (a campaign's send record) commits.
    pub async fn enqueue_mail_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        org: &OrgId,
        new: &NewMail,
    ) -> Result<Enqueued, StoreError> {
        let (id, message_id) = fresh_ids(new);
        let mut st = Statement::new(INSERT_HEAD);
        let markers: Vec<String> = insert_values(org, new, &id, &message_id, now_micros())
            .into_iter()
            .map(|b| st.bind(b))
            .collect();
        st.push(&format!(
            " VALUES ({}) ON CONFLICT (org_id, send_key, recipient) DO NOTHING",
            markers.join(", ")
        ));
        let created = st.query().execute(&mut **tx).await?.rows_affected() == 1;
        if created {
            return Ok(Enqueued {
                id,
                message_id,
                created,
            });
        }
        let row = sqlx::query(
            "SELECT id, message_id FROM mail_messages \
             WHERE org_id = $1 AND send_key = $2 AND recipient = $3",
        )
        .bind(org.as_str())
        .bind(&new.send_key)
        .bind(&new.recipient)
        .fetch_one(&mut **tx)
        .await?;
        Ok(Enqueued {
            id: row.col("id")?,
            message_id: row.col("message_id")?,
            created: false,
        })
    }

    /// Enqueues many messages in one transaction (a campaign's batch, the
    /// benchmark); how many were new.
    pub async fn enqueue_mail_batch(
        &self,
        org: &OrgId,
        batch: &[NewMail],
    ) -> Result<u64, StoreError> {
        let now = now_micros();
        let rows: Vec<Vec<Bind>> = batch
            .iter()
            .map(|new| {
                let (id, message_id) = fresh_ids(new);
                insert_values(org, new, &id, &message_id, now)
            })
            .collect();
        let mut tx = self.begin_write().await?;
        let mut added = 0;
        for st in multi_insert(
            self.backend(),
            INSERT_HEAD,
            &rows,
            "ON CONFLICT (org_id, send_key, recipient) DO NOTHING",
        ) {
            added += st.query().execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Puts back every message whose worker stopped mid-send (its lease
    /// ended while `sending`), recording the interrupted attempt: it may
    /// have reached the provider, so it is sent again with the same
    /// Message-ID. How many were put back.
    pub async fn reclaim_interrupted_mail(&self, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "UPDATE mail_messages SET state = 'queued', lease_owner = NULL, lease_until_us = NULL, \
             attempts = attempts + 1, tries = tries + 1, next_attempt_at_us = $1, \
             last_error = 'interrupted: the worker stopped before the answer was recorded', \
             updated_at_us = $1 \
             WHERE state = 'sending' AND lease_until_us <= $1 \
             RETURNING id, org_id, tries, provider_id, updated_at_us",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let id: String = row.col("id")?;
            let org: String = row.col("org_id")?;
            let tries: i64 = row.col("tries")?;
            let provider: Option<String> = row.col("provider_id")?;
            insert_attempt(
                &mut tx,
                &id,
                tries,
                &org,
                provider.as_deref().unwrap_or("unknown"),
                now,
                now,
                AttemptOutcome::Interrupted,
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    /// Claims up to `limit` due queued messages for `owner` until
    /// `now + lease_us`, oldest due first, bodies included.
    pub async fn claim_mail(
        &self,
        owner: &str,
        now: i64,
        lease_us: i64,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE mail_messages SET state = 'sending', lease_owner = $1, lease_until_us = $2, \
             updated_at_us = $3 WHERE id IN (SELECT id FROM mail_messages \
             WHERE state = 'queued' AND next_attempt_at_us <= $3 \
             ORDER BY next_attempt_at_us, id LIMIT $4{lock}) RETURNING {}",
            columns(true)
        );
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(now.saturating_add(lease_us))
            .bind(now)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        map_rows(&rows, |r| message(r, true))
    }

    /// Hands claimed messages back unsent (their provider had no tokens):
    /// queued again for `at`, no attempt spent, nothing recorded.
    pub async fn release_mail(
        &self,
        owner: &str,
        ids: &[String],
        at: i64,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut st = Statement::new(
            "UPDATE mail_messages SET state = 'queued', lease_owner = NULL, lease_until_us = NULL, \
             next_attempt_at_us = ",
        );
        let at_marker = st.bind(Bind::Int(at));
        st.push(&at_marker);
        st.push(" WHERE state = 'sending' AND lease_owner = ");
        let owner_marker = st.bind(Bind::Text(owner.to_owned()));
        st.push(&owner_marker);
        st.push(" AND id IN ");
        let list = st.in_list(ids.iter().map(String::as_str));
        st.push(&list);
        st.query().execute(self.pool()).await?;
        Ok(())
    }

    /// Records what became of claimed messages, all in one transaction: the
    /// row's next state, the attempt with its answer, and a suppression
    /// for a permanent refusal. A result whose lease was lost is skipped.
    /// Returns the ids recorded.
    pub async fn record_mail_results(
        &self,
        results: &[AttemptResult],
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut recorded = Vec::with_capacity(results.len());
        for r in results {
            let settled_event = matches!(r.state, OutboxState::Sent | OutboxState::Bounced);
            let row = sqlx::query(
                "UPDATE mail_messages SET state = $1, attempts = attempts + $2, tries = tries + 1, \
                 next_attempt_at_us = $3, lease_owner = NULL, lease_until_us = NULL, \
                 last_error = $4, log_pending = $5, \
                 sent_at_us = CASE WHEN $1 = 'sent' THEN $6 ELSE sent_at_us END, updated_at_us = $6, \
                 provider_message_id = COALESCE($9, provider_message_id) \
                 WHERE id = $7 AND state = 'sending' AND lease_owner = $8 RETURNING tries",
            )
            .bind(r.state.as_str())
            .bind(i64::from(r.spends_attempt))
            .bind(r.next_attempt_at_us)
            .bind(if r.outcome == AttemptOutcome::Accepted {
                None
            } else {
                r.answer.as_deref()
            })
            .bind(i64::from(settled_event))
            .bind(r.finished_at_us)
            .bind(&r.id)
            .bind(&r.owner)
            .bind(if r.outcome == AttemptOutcome::Accepted {
                r.answer.as_deref().and_then(queued_id)
            } else {
                None
            })
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                tracing::warn!(message = %r.id, "an attempt's lease was lost before it was recorded");
                continue;
            };
            let tries: i64 = row.col("tries")?;
            insert_attempt(
                &mut tx,
                &r.id,
                tries,
                r.org_id.as_str(),
                &r.provider,
                r.started_at_us,
                r.finished_at_us,
                r.outcome,
                r.answer.as_deref(),
            )
            .await?;
            if let Some(reason) = r.suppress {
                crate::suppressions::suppress_in(
                    &mut tx,
                    &r.org_id,
                    &r.recipient,
                    reason,
                    r.answer.as_deref(),
                    &r.id,
                    r.finished_at_us,
                )
                .await?;
            }
            recorded.push(r.id.clone());
        }
        tx.commit().await?;
        Ok(recorded)
    }

    /// Messages whose outcome the event log has not been told yet.
    pub async fn mail_log_pending(&self, limit: i64) -> Result<Vec<OutboxMessage>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM mail_messages WHERE log_pending = 1 ORDER BY updated_at_us, id LIMIT $1",
            columns(false)
        ))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, |r| message(r, false))
    }

    /// The log has the outcome of these messages.
    pub async fn clear_mail_log_pending(&self, ids: &[String]) -> Result<(), StoreError> {
        for chunk in ids.chunks(500) {
            let mut st = Statement::new("UPDATE mail_messages SET log_pending = 0 WHERE id IN ");
            let list = st.in_list(chunk.iter().map(String::as_str));
            st.push(&list);
            st.query().execute(self.pool()).await?;
        }
        Ok(())
    }

    /// The outbox of `org`, newest first, without bodies.
    pub async fn mail_messages_page(
        &self,
        org: &OrgId,
        query: &OutboxQuery<'_>,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut st = Statement::new(format!(
            "SELECT {} FROM mail_messages WHERE org_id = ",
            columns(false)
        ));
        let org_marker = st.bind(Bind::Text(org.as_str().to_owned()));
        st.push(&org_marker);
        let equal = |st: &mut Statement, column: &str, value: Option<&str>| {
            if let Some(value) = value {
                let marker = st.bind(Bind::Text(value.to_owned()));
                st.push(&format!(" AND {column} = {marker}"));
            }
        };
        equal(&mut st, "state", query.state.map(OutboxState::as_str));
        equal(&mut st, "recipient", query.recipient);
        equal(&mut st, "campaign_id", query.campaign_id);
        equal(&mut st, "flow_id", query.flow_id);
        if let Some((at, id)) = query.before {
            let at_marker = st.bind(Bind::Int(at));
            let id_marker = st.bind(Bind::Text(id.to_owned()));
            st.push(&format!(
                " AND (created_at_us < {at_marker} OR (created_at_us = {at_marker} AND id < {id_marker}))"
            ));
        }
        let limit = st.bind(Bind::Int(i64::from(query.limit)));
        st.push(&format!(
            " ORDER BY created_at_us DESC, id DESC LIMIT {limit}"
        ));
        let rows = st.query().fetch_all(self.pool()).await?;
        map_rows(&rows, |r| message(r, false))
    }

    /// One message of `org`, bodies included.
    pub async fn mail_message(
        &self,
        org: &OrgId,
        id: &str,
    ) -> Result<Option<OutboxMessage>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM mail_messages WHERE org_id = $1 AND id = $2",
            columns(true)
        ))
        .bind(org.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(|r| message(r, true)).transpose()
    }

    /// The attempts of a message of `org`, in order.
    pub async fn mail_attempts(
        &self,
        org: &OrgId,
        id: &str,
    ) -> Result<Vec<MailAttempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT attempt, provider, started_at_us, finished_at_us, outcome, answer \
             FROM mail_attempts WHERE org_id = $1 AND message_id = $2 ORDER BY attempt",
        )
        .bind(org.as_str())
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, |r| {
            Ok(MailAttempt {
                attempt: r.col("attempt")?,
                provider: r.col("provider")?,
                started_at_us: r.col("started_at_us")?,
                finished_at_us: r.col("finished_at_us")?,
                outcome: r.col_parsed("outcome")?,
                answer: r.col("answer")?,
            })
        })
    }

    /// An operator's retry of a dead letter: queued now with its attempts
    /// renewed. `Ok(None)`: no such message; `Err(Invalid)`: it is not dead.
    pub async fn retry_dead_mail(
        &self,
        org: &OrgId,
        id: &str,
    ) -> Result<Option<OutboxMessage>, StoreError> {
        let now = now_micros();
        let updated = sqlx::query(
            "UPDATE mail_messages SET state = 'queued', attempts = 0, next_attempt_at_us = $1, \
             updated_at_us = $1 WHERE org_id = $2 AND id = $3 AND state = 'dead'",
        )
        .bind(now)
        .bind(org.as_str())
        .bind(id)
        .execute(self.pool())
        .await?
        .rows_affected();
        let found = self.mail_message(org, id).await?;
        match (&found, updated) {
            (Some(m), 0) => Err(StoreError::Invalid(format!(
                "message {id} is {}, not dead: only a dead letter is retried",
                m.state.as_str()
            ))),
            _ => Ok(found),
        }
    }

    /// How many messages of `org` are in each state, for one campaign or
    /// flow or for all.
    pub async fn outbox_counts(
        &self,
        org: &OrgId,
        campaign_id: Option<&str>,
        flow_id: Option<&str>,
    ) -> Result<Vec<(OutboxState, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM mail_messages WHERE org_id = $1 \
             AND (CAST($2 AS TEXT) IS NULL OR campaign_id = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR flow_id = $3) GROUP BY state ORDER BY state",
        )
        .bind(org.as_str())
        .bind(campaign_id)
        .bind(flow_id)
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, |r| Ok((r.col_parsed("state")?, r.col("n")?)))
    }

    /// Changes a provider's shared bucket under a lock: `change` gets the
    /// stored state (a fresh one the first time) and returns the new state
    /// with its own answer.
    pub async fn with_provider_bucket<T>(
        &self,
        provider_key: &str,
        change: impl FnOnce(BucketState, i64) -> (BucketState, i64, T),
    ) -> Result<T, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO mail_provider_buckets (provider_key) VALUES ($1) \
             ON CONFLICT (provider_key) DO NOTHING",
        )
        .bind(provider_key)
        .execute(&mut *tx)
        .await?;
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "SELECT second_tat_us, hour_tat_us, slowdown, paused_until_us, accepted_in_row \
             FROM mail_provider_buckets WHERE provider_key = $1{lock}"
        ))
        .bind(provider_key)
        .fetch_one(&mut *tx)
        .await?;
        let state = BucketState {
            second_tat_us: row.col("second_tat_us")?,
            hour_tat_us: row.col("hour_tat_us")?,
            slowdown: row.col("slowdown")?,
            paused_until_us: row.col("paused_until_us")?,
        };
        let accepted_in_row: i64 = row.col("accepted_in_row")?;
        let (next, accepted_in_row, answer) = change(state, accepted_in_row);
        sqlx::query(
            "UPDATE mail_provider_buckets SET second_tat_us = $1, hour_tat_us = $2, slowdown = $3, \
             paused_until_us = $4, accepted_in_row = $5 WHERE provider_key = $6",
        )
        .bind(next.second_tat_us)
        .bind(next.hour_tat_us)
        .bind(next.slowdown)
        .bind(next.paused_until_us)
        .bind(accepted_in_row)
        .bind(provider_key)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(answer)
    }
}

#[allow(clippy::too_many_arguments)]
async fn insert_attempt(
    tx: &mut Transaction<'_, Any>,
    message_id: &str,
    attempt: i64,
    org: &str,
    provider: &str,
    started_at_us: i64,
    finished_at_us: i64,
    outcome: AttemptOutcome,
    answer: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO mail_attempts (message_id, attempt, org_id, provider, started_at_us, \
         finished_at_us, outcome, answer) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (message_id, attempt) DO NOTHING",
    )
    .bind(message_id)
    .bind(attempt)
    .bind(org)
    .bind(provider)
    .bind(started_at_us)
    .bind(finished_at_us)
    .bind(outcome.as_str())
    .bind(answer)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
