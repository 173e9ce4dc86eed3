//! Bounce and complaint reports as received, each recorded once, with what
//! it did in the same transaction: a hard bounce or a complaint suppresses
//! the recipient, a soft bounce counts toward the limit in a row, a
//! delivery resets the count, and a hard bounce of a message the relay had
//! accepted marks that message bounced. The event log is told afterwards
//! (`log_pending`), so a crash between the two tells it later, not never.

use cohort_domain::ids::{new_id, OrgId};
use cohort_domain::mail::ReportKind;
use cohort_domain::suppression::SuppressionReason;

use crate::mail::OutboxMessage;
use crate::row::{map_rows, RowExt};
use crate::sql::Statement;
use crate::{now_micros, Db, StoreError};

/// A report to record.
#[derive(Debug, Clone)]
pub struct NewMailReport {
    pub org_id: OrgId,
    /// What makes a second delivery of the same report a duplicate.
    pub report_key: String,
    /// The outbox message it is about, when it could be told.
    pub mail_id: Option<String>,
    /// Lower-cased.
    pub recipient: String,
    pub kind: ReportKind,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    /// `inbound`, `ses`, `sendgrid`, `postmark`, `mailgun`.
    pub source: String,
    pub reported_at_us: i64,
}

/// A report as kept, with what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailReportRow {
    pub id: String,
    pub org_id: OrgId,
    pub mail_id: Option<String>,
    pub recipient: String,
    pub kind: ReportKind,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    pub source: String,
    pub reported_at_us: i64,
    pub received_at_us: i64,
    /// The suppression this report added, if it added one.
    pub suppressed: Option<SuppressionReason>,
    /// For a soft bounce: the recipient's soft bounces in a row, this one
    /// included.
    pub soft_in_a_row: Option<i64>,
}

/// What recording a report came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportRecorded {
    New(Box<MailReportRow>),
    /// The same report was recorded before; nothing changed.
    Duplicate,
}

const COLUMNS: &str = "id, org_id, mail_id, recipient, kind, status, diagnostic, source, \
     reported_at_us, received_at_us, suppressed, soft_in_a_row";

fn report(row: &sqlx::any::AnyRow) -> Result<MailReportRow, StoreError> {
    let suppressed: Option<String> = row.col("suppressed")?;
    Ok(MailReportRow {
        id: row.col("id")?,
        org_id: OrgId::from_stored(row.col::<String, _>("org_id")?),
        mail_id: row.col("mail_id")?,
        recipient: row.col("recipient")?,
        kind: row.col_parsed("kind")?,
        status: row.col("status")?,
        diagnostic: row.col("diagnostic")?,
        source: row.col("source")?,
        reported_at_us: row.col("reported_at_us")?,
        received_at_us: row.col("received_at_us")?,
        suppressed: suppressed
            .map(|s| s.parse().map_err(|e| StoreError::decode("suppressed", e)))
            .transpose()?,
        soft_in_a_row: row.col("soft_in_a_row")?,
    })
}

impl Db {
    /// The outbox message a report is about: by outbox id (a VERP address
    /// or one of Cohort's Message-IDs), else by the Message-ID header, else
    /// by the id the provider's relay gave it. `org`: only that
    /// organisation's messages (a webhook is the organisation's own); the
    /// inbound listener, which serves every organisation, passes `None`
    /// and goes by the random id alone.
    pub async fn reported_mail(
        &self,
        org: Option<&OrgId>,
        outbox_id: Option<&str>,
        message_id: Option<&str>,
        provider_message_id: Option<&str>,
    ) -> Result<Option<OutboxMessage>, StoreError> {
        let lookups = [
            ("id", outbox_id),
            ("message_id", message_id),
            ("provider_message_id", provider_message_id),
        ];
        for (column, value) in lookups {
            let Some(value) = value.filter(|v| !v.is_empty()) else {
                continue;
            };
            let row = sqlx::query(&format!(
                "SELECT {} FROM mail_messages WHERE {column} = $1 \
                 AND (CAST($2 AS TEXT) IS NULL OR org_id = $2) \
                 ORDER BY created_at_us DESC LIMIT 1",
                super::outbox::summary_columns()
            ))
            .bind(value)
            .bind(org.map(OrgId::as_str))
            .fetch_optional(self.pool())
            .await?;
            if let Some(row) = row {
                return super::outbox::summary(&row).map(Some);
            }
        }
        Ok(None)
    }

    /// Records `new` and acts on it, in one transaction: the suppression a
    /// hard bounce or a complaint adds, the soft bounces in a row (and the
    /// suppression at `soft_limit`), the reset a delivery makes, and the
    /// `bounced` state of a message a hard bounce came back for.
    pub async fn record_mail_report(
        &self,
        new: &NewMailReport,
        soft_limit: u32,
    ) -> Result<ReportRecorded, StoreError> {
        let now = now_micros();
        let id = new_id("rpt");
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO mail_reports (id, org_id, report_key, mail_id, recipient, kind, status, \
             diagnostic, source, reported_at_us, received_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (org_id, report_key) DO NOTHING",
        )
        .bind(&id)
        .bind(new.org_id.as_str())
        .bind(&new.report_key)
        .bind(new.mail_id.as_deref())
        .bind(&new.recipient)
        .bind(new.kind.as_str())
        .bind(new.status.as_deref())
        .bind(new.diagnostic.as_deref())
        .bind(&new.source)
        .bind(new.reported_at_us)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(ReportRecorded::Duplicate);
        }
        let detail = new
            .diagnostic
            .clone()
            .or_else(|| new.status.clone())
            .unwrap_or_else(|| format!("{} report from {}", new.kind.as_str(), new.source));
        let source = format!("report:{}", new.source);
        let suppress = |reason| Suppress {
            org: &new.org_id,
            email: &new.recipient,
            reason,
            detail: &detail,
            source: &source,
            now,
        };
        let mut suppressed = None;
        let mut soft_in_a_row = None;
        match new.kind {
            ReportKind::HardBounce => {
                if suppress(SuppressionReason::HardBounce)
                    .apply(&mut tx)
                    .await?
                {
                    suppressed = Some(SuppressionReason::HardBounce);
                }
                if let Some(mail_id) = &new.mail_id {
                    // The relay said 250, the recipient's server said no.
                    sqlx::query(
                        "UPDATE mail_messages SET state = 'bounced', last_error = $1, \
                         updated_at_us = $2 WHERE id = $3 AND org_id = $4 AND state = 'sent'",
                    )
                    .bind(&detail)
                    .bind(now)
                    .bind(mail_id)
                    .bind(new.org_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
            }
            ReportKind::Complaint => {
                if suppress(SuppressionReason::Complaint)
                    .apply(&mut tx)
                    .await?
                {
                    suppressed = Some(SuppressionReason::Complaint);
                }
            }
            ReportKind::SoftBounce => {
                let row = sqlx::query(
                    "INSERT INTO mail_soft_bounces (org_id, email, in_a_row, last_at_us) \
                     VALUES ($1, $2, 1, $3) ON CONFLICT (org_id, email) DO UPDATE \
                     SET in_a_row = mail_soft_bounces.in_a_row + 1, last_at_us = $3 \
                     RETURNING in_a_row",
                )
                .bind(new.org_id.as_str())
                .bind(&new.recipient)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                let count: i64 = row.col("in_a_row")?;
                soft_in_a_row = Some(count);
                if count >= i64::from(soft_limit.max(1))
                    && suppress(SuppressionReason::SoftBounces)
                        .apply(&mut tx)
                        .await?
                {
                    suppressed = Some(SuppressionReason::SoftBounces);
                }
            }
            ReportKind::Delivered => {
                sqlx::query("DELETE FROM mail_soft_bounces WHERE org_id = $1 AND email = $2")
                    .bind(new.org_id.as_str())
                    .bind(&new.recipient)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query("UPDATE mail_reports SET suppressed = $1, soft_in_a_row = $2 WHERE id = $3")
            .bind(suppressed.map(SuppressionReason::as_str))
            .bind(soft_in_a_row)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ReportRecorded::New(Box::new(MailReportRow {
            id,
            org_id: new.org_id.clone(),
            mail_id: new.mail_id.clone(),
            recipient: new.recipient.clone(),
            kind: new.kind,
            status: new.status.clone(),
            diagnostic: new.diagnostic.clone(),
            source: new.source.clone(),
            reported_at_us: new.reported_at_us,
            received_at_us: now,
            suppressed,
            soft_in_a_row,
        })))
    }

    /// Reports the event log has not been told of yet, oldest first.
    pub async fn mail_reports_log_pending(
        &self,
        limit: i64,
    ) -> Result<Vec<MailReportRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM mail_reports WHERE log_pending = 1 \
             ORDER BY received_at_us, id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, report)
    }

    /// The log has these reports.
    pub async fn clear_mail_reports_log_pending(&self, ids: &[String]) -> Result<(), StoreError> {
        for chunk in ids.chunks(500) {
            let mut st = Statement::new("UPDATE mail_reports SET log_pending = 0 WHERE id IN ");
            let list = st.in_list(chunk.iter().map(String::as_str));
            st.push(&list);
            st.query().execute(self.pool()).await?;
        }
        Ok(())
    }

    /// The reports about one message of `org`, oldest first.
    pub async fn mail_reports_of(
        &self,
        org: &OrgId,
        mail_id: &str,
    ) -> Result<Vec<MailReportRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM mail_reports WHERE org_id = $1 AND mail_id = $2 \
             ORDER BY received_at_us, id"
        ))
        .bind(org.as_str())
        .bind(mail_id)
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, report)
    }

    /// The latest reports of `org`, newest first.
    pub async fn recent_mail_reports(
        &self,
        org: &OrgId,
        limit: u32,
    ) -> Result<Vec<MailReportRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM mail_reports WHERE org_id = $1 \
             ORDER BY received_at_us DESC, id DESC LIMIT $2"
        ))
        .bind(org.as_str())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, report)
    }

    /// Soft bounces of `email` in a row (0 when none since the last
    /// delivery).
    pub async fn soft_bounces_in_a_row(&self, org: &OrgId, email: &str) -> Result<i64, StoreError> {
        let row =
            sqlx::query("SELECT in_a_row FROM mail_soft_bounces WHERE org_id = $1 AND email = $2")
                .bind(org.as_str())
                .bind(email)
                .fetch_optional(self.pool())
                .await?;
        row.map_or(Ok(0), |r| r.col("in_a_row"))
    }
}

/// A suppression a report adds.
struct Suppress<'a> {
    org: &'a OrgId,
    email: &'a str,
    reason: SuppressionReason,
    detail: &'a str,
    source: &'a str,
    now: i64,
}

impl Suppress<'_> {
    /// `true` when it was new.
    async fn apply(
        self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    ) -> Result<bool, StoreError> {
        crate::suppressions::suppress_in(
            tx,
            self.org,
            self.email,
            self.reason,
            Some(self.detail),
            self.source,
            self.now,
        )
        .await
    }
}
