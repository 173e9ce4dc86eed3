//! Saved segments: their definitions, their members, the ordered feed of
//! entries and exits, and the marks the membership worker consumes. Every
//! write happens in a [`SegmentTx`], which holds the membership lock: a
//! definition saved, a recompute and a worker round never interleave, so
//! the feed's `seq` order is commit order on both backends. What to
//! evaluate and why is the engine's (`cohort_engine::segments`).

use std::collections::BTreeSet;

use cohort_domain::ids::OrgId;
use cohort_domain::segments::Rule;
use sqlx::{Any, Transaction};

use super::compile::{compile, compile_next_checks, Scope};
use super::SegmentQueryError;
use crate::row::RowExt;
use crate::sql::{multi_insert, Bind, Statement};
use crate::{Backend, Db, StoreError};

/// Profiles per scoped statement: well under both backends' parameter limits
/// even when a rule names the profiles in several conditions.
pub const PROFILES_PER_QUERY: usize = 200;

/// A saved segment as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRecord {
    pub segment_id: String,
    pub name: String,
    pub description: Option<String>,
    /// The canonical text form.
    pub rule_text: String,
    pub rule: Rule,
    pub member_count: i64,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

/// A member of a segment, for the members list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMember {
    pub profile_id: String,
    pub email: Option<String>,
    pub entered_at_us: i64,
}

/// A segment a profile is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileSegment {
    pub segment_id: String,
    pub name: String,
    pub entered_at_us: i64,
}

/// One entry or exit of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentChange {
    pub seq: i64,
    pub org_id: String,
    pub segment_id: String,
    /// The segment's name now (`None` once it is deleted).
    pub segment_name: Option<String>,
    pub profile_id: String,
    pub entered: bool,
    pub at_us: i64,
    pub reason: String,
}

/// One entry or exit of a segment, with the member's email, for its page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFeedEntry {
    pub profile_id: String,
    pub email: Option<String>,
    pub entered: bool,
    pub at_us: i64,
    pub reason: String,
}

/// A profile the projection touched, with what touched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyMark {
    pub seq: i64,
    pub org_id: String,
    pub profile_id: String,
    /// `track:<event>`, `identify`, `page`, `resource`, … or `any`.
    pub cause: String,
}

/// A window crossing that has come due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCheck {
    pub org_id: String,
    pub segment_id: String,
    pub profile_id: String,
    pub due_us: i64,
}

/// What a membership write changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipDelta {
    pub entered: Vec<String>,
    pub exited: Vec<String>,
}

/// A day's closing member count, for the membership chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyCount {
    /// Midnight UTC that starts the day, µs.
    pub day_start_us: i64,
    pub members: i64,
}

/// The cause the projection marks when anything about a profile may have
/// changed (a merge, an erasure): every segment is re-evaluated.
pub const CAUSE_ANY: &str = "any";

fn decode_record(row: &sqlx::any::AnyRow) -> Result<SegmentRecord, StoreError> {
    Ok(SegmentRecord {
        segment_id: row.col("segment_id")?,
        name: row.col("name")?,
        description: row.col("description")?,
        rule_text: row.col("rule")?,
        rule: row.col_json("ast")?,
        member_count: row.col("member_count")?,
        created_at_us: row.col("created_at_us")?,
        updated_at_us: row.col("updated_at_us")?,
    })
}

const RECORD_COLUMNS: &str =
    "segment_id, name, description, rule, ast, member_count, created_at_us, updated_at_us";

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// Why a definition could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("a segment named \"{0}\" already exists")]
    NameTaken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for SaveError {
    fn from(e: sqlx::Error) -> Self {
        SaveError::Store(e.into())
    }
}

impl Db {
    /// Opens a membership transaction: a write transaction holding the
    /// membership lock.
    pub async fn begin_segments(&self) -> Result<SegmentTx, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE segment_membership_lock SET updated_at_us = $1 WHERE name = 'membership'",
        )
        .bind(crate::now_micros())
        .execute(&mut *tx)
        .await?;
        Ok(SegmentTx {
            tx,
            backend: self.backend(),
        })
    }

    /// Every segment of `org`, by name.
    pub async fn segments_of(&self, org: &OrgId) -> Result<Vec<SegmentRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM segments WHERE org_id = $1 ORDER BY name"
        ))
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(decode_record).collect()
    }

    /// A page of `org`'s segments in id order, after `after`.
    pub async fn segment_page(
        &self,
        org: &OrgId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SegmentRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM segments WHERE org_id = $1 AND segment_id > $2 \
             ORDER BY segment_id LIMIT $3"
        ))
        .bind(org.as_str())
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(decode_record).collect()
    }

    pub async fn segment(
        &self,
        org: &OrgId,
        segment_id: &str,
    ) -> Result<Option<SegmentRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM segments WHERE org_id = $1 AND segment_id = $2"
        ))
        .bind(org.as_str())
        .bind(segment_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(decode_record).transpose()
    }

    /// A page of a segment's members in profile-id order, after `after`.
    pub async fn segment_member_page(
        &self,
        org: &OrgId,
        segment_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SegmentMember>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.profile_id, p.email, m.entered_at_us FROM segment_members m \
             LEFT JOIN profiles p ON p.org_id = m.org_id AND p.profile_id = m.profile_id \
             WHERE m.org_id = $1 AND m.segment_id = $2 AND m.profile_id > $3 \
             ORDER BY m.profile_id LIMIT $4",
        )
        .bind(org.as_str())
        .bind(segment_id)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SegmentMember {
                    profile_id: r.col(0)?,
                    email: r.col(1)?,
                    entered_at_us: r.col(2)?,
                })
            })
            .collect()
    }

    /// The segments a profile is in, by name.
    pub async fn profile_segments(
        &self,
        org: &OrgId,
        profile_id: &str,
    ) -> Result<Vec<ProfileSegment>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.segment_id, s.name, m.entered_at_us FROM segment_members m \
             JOIN segments s ON s.org_id = m.org_id AND s.segment_id = m.segment_id \
             WHERE m.org_id = $1 AND m.profile_id = $2 ORDER BY s.name",
        )
        .bind(org.as_str())
        .bind(profile_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ProfileSegment {
                    segment_id: r.col(0)?,
                    name: r.col(1)?,
                    entered_at_us: r.col(2)?,
                })
            })
            .collect()
    }

    /// A profile's latest entries and exits, newest first.
    pub async fn profile_segment_changes(
        &self,
        org: &OrgId,
        profile_id: &str,
        limit: u32,
    ) -> Result<Vec<SegmentChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.seq, c.org_id, c.segment_id, s.name, c.profile_id, c.change, c.at_us, c.reason \
             FROM segment_changes c LEFT JOIN segments s ON s.org_id = c.org_id AND s.segment_id = c.segment_id \
             WHERE c.org_id = $1 AND c.profile_id = $2 ORDER BY c.seq DESC LIMIT $3",
        )
        .bind(org.as_str())
        .bind(profile_id)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(decode_change).collect()
    }

    /// A segment's latest entries and exits, newest first (index
    /// `segment_changes_segment`).
    pub async fn segment_recent_changes(
        &self,
        org: &OrgId,
        segment_id: &str,
        limit: u32,
    ) -> Result<Vec<SegmentFeedEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.profile_id, p.email, c.change, c.at_us, c.reason FROM segment_changes c \
             LEFT JOIN profiles p ON p.org_id = c.org_id AND p.profile_id = c.profile_id \
             WHERE c.org_id = $1 AND c.segment_id = $2 ORDER BY c.at_us DESC, c.seq DESC LIMIT $3",
        )
        .bind(org.as_str())
        .bind(segment_id)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let change: String = r.col(2)?;
                Ok(SegmentFeedEntry {
                    profile_id: r.col(0)?,
                    email: r.col(1)?,
                    entered: change == "entered",
                    at_us: r.col(3)?,
                    reason: r.col(4)?,
                })
            })
            .collect()
    }

    /// The feed after `after_seq`, across organisations, in order: what
    /// flows and destinations follow.
    pub async fn segment_changes_after(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<SegmentChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.seq, c.org_id, c.segment_id, s.name, c.profile_id, c.change, c.at_us, c.reason \
             FROM segment_changes c LEFT JOIN segments s ON s.org_id = c.org_id AND s.segment_id = c.segment_id \
             WHERE c.seq > $1 ORDER BY c.seq LIMIT $2",
        )
        .bind(after_seq)
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(decode_change).collect()
    }

    /// A segment's member count at the close of each of the last `days`
    /// UTC days up to `now_us` (today last), from its current count and the
    /// feed.
    pub async fn segment_daily_counts(
        &self,
        org: &OrgId,
        segment: &SegmentRecord,
        days: u32,
        now_us: i64,
    ) -> Result<Vec<DailyCount>, StoreError> {
        const DAY_US: i64 = 86_400_000_000;
        let today = now_us.div_euclid(DAY_US) * DAY_US;
        let first = today - DAY_US * i64::from(days.saturating_sub(1));
        // Net entries per day since the first day, newest last.
        let rows = sqlx::query(
            "SELECT (at_us - $3) / $4 AS day, \
             CAST(SUM(CASE WHEN change = 'entered' THEN 1 ELSE -1 END) AS BIGINT) AS net \
             FROM segment_changes WHERE org_id = $1 AND segment_id = $2 AND at_us >= $3 \
             GROUP BY (at_us - $3) / $4",
        )
        .bind(org.as_str())
        .bind(&segment.segment_id)
        .bind(first)
        .bind(DAY_US)
        .fetch_all(self.pool())
        .await?;
        let mut net = vec![0i64; days as usize];
        for r in &rows {
            let day: i64 = r.col(0)?;
            let n: i64 = r.col(1)?;
            if let Some(slot) = usize::try_from(day).ok().and_then(|d| net.get_mut(d)) {
                *slot += n;
            }
        }
        // Walk back from today's count: the close of day d is the close of
        // d + 1 minus day d + 1's net entries.
        let mut out = vec![
            DailyCount {
                day_start_us: 0,
                members: 0
            };
            days as usize
        ];
        let mut count = segment.member_count;
        for d in (0..days as usize).rev() {
            out[d] = DailyCount {
                day_start_us: first + DAY_US * d as i64,
                members: count,
            };
            count -= net[d];
        }
        Ok(out)
    }
}

fn decode_change(r: &sqlx::any::AnyRow) -> Result<SegmentChange, StoreError> {
    let change: String = r.col(5)?;
    Ok(SegmentChange {
        seq: r.col(0)?,
        org_id: r.col(1)?,
        segment_id: r.col(2)?,
        segment_name: r.col(3)?,
        profile_id: r.col(4)?,
        entered: match change.as_str() {
            "entered" => true,
            "exited" => false,
            other => {
                return Err(StoreError::decode(
                    "change",
                    format!("unknown change {other:?}"),
                ))
            }
        },
        at_us: r.col(6)?,
        reason: r.col(7)?,
    })
}

/// A membership transaction (see [`Db::begin_segments`]).
pub struct SegmentTx {
    tx: Transaction<'static, Any>,
    backend: Backend,
}

/// A definition to insert.
#[derive(Debug, Clone)]
pub struct NewSegment<'a> {
    pub segment_id: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub rule_text: &'a str,
    pub rule: &'a Rule,
    pub now_us: i64,
}

impl SegmentTx {
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Every segment of `org` as this transaction sees it.
    pub async fn definitions(&mut self, org: &OrgId) -> Result<Vec<SegmentRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORD_COLUMNS} FROM segments WHERE org_id = $1 ORDER BY name"
        ))
        .bind(org.as_str())
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(decode_record).collect()
    }

    pub async fn insert_definition(
        &mut self,
        org: &OrgId,
        new: &NewSegment<'_>,
    ) -> Result<(), SaveError> {
        self.write_definition(
            org,
            new,
            "INSERT INTO segments (org_id, segment_id, name, description, rule, ast, member_count, created_at_us, updated_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)",
        )
        .await
    }

    /// Rewrites a definition's name, description and rule.
    pub async fn update_definition(
        &mut self,
        org: &OrgId,
        new: &NewSegment<'_>,
    ) -> Result<(), SaveError> {
        self.write_definition(
            org,
            new,
            "UPDATE segments SET name = $3, description = $4, rule = $5, ast = $6, updated_at_us = $7 \
             WHERE org_id = $1 AND segment_id = $2",
        )
        .await
    }

    /// Runs `sql` with a definition's values as `$1`…`$7`; a taken name is
    /// [`SaveError::NameTaken`].
    async fn write_definition(
        &mut self,
        org: &OrgId,
        new: &NewSegment<'_>,
        sql: &str,
    ) -> Result<(), SaveError> {
        let ast =
            serde_json::to_string(new.rule).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let result = sqlx::query(sql)
            .bind(org.as_str())
            .bind(new.segment_id)
            .bind(new.name)
            .bind(new.description)
            .bind(new.rule_text)
            .bind(ast)
            .bind(new.now_us)
            .execute(&mut *self.tx)
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(SaveError::NameTaken(new.name.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a definition, recording every member's exit with `reason`;
    /// returns the exits.
    pub async fn delete_definition(
        &mut self,
        org: &OrgId,
        segment_id: &str,
        now_us: i64,
        reason: &str,
    ) -> Result<Vec<String>, StoreError> {
        let selected = BTreeSet::new();
        let delta = self
            .apply(org, segment_id, None, &selected, now_us, reason)
            .await?;
        sqlx::query("DELETE FROM segment_checks WHERE org_id = $1 AND segment_id = $2")
            .bind(org.as_str())
            .bind(segment_id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("DELETE FROM segments WHERE org_id = $1 AND segment_id = $2")
            .bind(org.as_str())
            .bind(segment_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(delta.exited)
    }

    /// The profiles the rule selects at `now_us`: all of `org`'s, or those of
    /// `profiles` (in chunks).
    pub async fn select(
        &mut self,
        org: &OrgId,
        rule: &Rule,
        profiles: Option<&[String]>,
        now_us: i64,
        lookup: &(dyn Fn(&str) -> Option<Rule> + Sync),
    ) -> Result<BTreeSet<String>, SegmentQueryError> {
        let mut out = BTreeSet::new();
        if profiles.is_none() {
            super::refresh_stale_statistics(&mut self.tx, self.backend).await?;
        }
        let chunks: Vec<Scope<'_>> = match profiles {
            None => vec![Scope::All],
            Some(ps) => ps.chunks(PROFILES_PER_QUERY).map(Scope::Profiles).collect(),
        };
        for scope in chunks {
            let compiled = compile(self.backend, org, rule, now_us, scope, lookup)?;
            let rows = compiled
                .statement
                .query_planned_for_values()
                .fetch_all(&mut *self.tx)
                .await?;
            for r in &rows {
                out.insert(r.col::<String, _>(0)?);
            }
        }
        Ok(out)
    }

    /// Makes the stored membership of the segment, over `profiles` (or every
    /// profile), equal `selected`: members added and removed, each change
    /// appended to the feed with `reason`, the count kept.
    pub async fn apply(
        &mut self,
        org: &OrgId,
        segment_id: &str,
        profiles: Option<&[String]>,
        selected: &BTreeSet<String>,
        now_us: i64,
        reason: &str,
    ) -> Result<MembershipDelta, StoreError> {
        let mut current = BTreeSet::new();
        match profiles {
            None => {
                let rows = sqlx::query(
                    "SELECT profile_id FROM segment_members WHERE org_id = $1 AND segment_id = $2",
                )
                .bind(org.as_str())
                .bind(segment_id)
                .fetch_all(&mut *self.tx)
                .await?;
                for r in &rows {
                    current.insert(r.col::<String, _>(0)?);
                }
            }
            Some(ps) => {
                for chunk in ps.chunks(PROFILES_PER_QUERY) {
                    let mut st = Statement::new(
                        "SELECT profile_id FROM segment_members WHERE org_id = $1 AND segment_id = $2 AND profile_id IN ",
                    );
                    st.bind(Bind::Text(org.as_str().to_owned()));
                    st.bind(Bind::Text(segment_id.to_owned()));
                    let list = st.in_list(chunk.iter().map(String::as_str));
                    st.push(&list);
                    for r in st.query().fetch_all(&mut *self.tx).await? {
                        current.insert(r.col::<String, _>(0)?);
                    }
                }
            }
        }
        let delta = MembershipDelta {
            entered: selected.difference(&current).cloned().collect(),
            exited: current.difference(selected).cloned().collect(),
        };
        if delta.entered.is_empty() && delta.exited.is_empty() {
            return Ok(delta);
        }
        let text = |s: &str| Bind::Text(s.to_owned());
        let member_rows: Vec<Vec<Bind>> = delta
            .entered
            .iter()
            .map(|p| {
                vec![
                    text(org.as_str()),
                    text(segment_id),
                    text(p),
                    Bind::Int(now_us),
                ]
            })
            .collect();
        for st in multi_insert(
            self.backend,
            "INSERT INTO segment_members (org_id, segment_id, profile_id, entered_at_us)",
            &member_rows,
            "",
        ) {
            st.query().execute(&mut *self.tx).await?;
        }
        for chunk in delta.exited.chunks(PROFILES_PER_QUERY) {
            let mut st = Statement::new(
                "DELETE FROM segment_members WHERE org_id = $1 AND segment_id = $2 AND profile_id IN ",
            );
            st.bind(text(org.as_str()));
            st.bind(text(segment_id));
            let list = st.in_list(chunk.iter().map(String::as_str));
            st.push(&list);
            st.query().execute(&mut *self.tx).await?;
        }
        let change_rows: Vec<Vec<Bind>> = delta
            .entered
            .iter()
            .map(|p| (p, "entered"))
            .chain(delta.exited.iter().map(|p| (p, "exited")))
            .map(|(p, change)| {
                vec![
                    text(org.as_str()),
                    text(segment_id),
                    text(p),
                    text(change),
                    Bind::Int(now_us),
                    text(reason),
                ]
            })
            .collect();
        for st in multi_insert(
            self.backend,
            "INSERT INTO segment_changes (org_id, segment_id, profile_id, change, at_us, reason)",
            &change_rows,
            "",
        ) {
            st.query().execute(&mut *self.tx).await?;
        }
        let net = delta.entered.len() as i64 - delta.exited.len() as i64;
        sqlx::query(
            "UPDATE segments SET member_count = member_count + $3 WHERE org_id = $1 AND segment_id = $2",
        )
        .bind(org.as_str())
        .bind(segment_id)
        .bind(net)
        .execute(&mut *self.tx)
        .await?;
        Ok(delta)
    }

    /// Replaces the scheduled window checks of the segment, over `profiles`
    /// (or every profile), with each profile's next crossing after `now_us`.
    pub async fn schedule_checks(
        &mut self,
        org: &OrgId,
        segment_id: &str,
        rule: &Rule,
        profiles: Option<&[String]>,
        now_us: i64,
        lookup: &(dyn Fn(&str) -> Option<Rule> + Sync),
    ) -> Result<(), SegmentQueryError> {
        let scopes: Vec<Scope<'_>> = match profiles {
            None => vec![Scope::All],
            Some(ps) => ps.chunks(PROFILES_PER_QUERY).map(Scope::Profiles).collect(),
        };
        for scope in scopes {
            let mut clear =
                Statement::new("DELETE FROM segment_checks WHERE org_id = $1 AND segment_id = $2");
            clear.bind(Bind::Text(org.as_str().to_owned()));
            clear.bind(Bind::Text(segment_id.to_owned()));
            if let Scope::Profiles(ps) = scope {
                let list = clear.in_list(ps.iter().map(String::as_str));
                clear.push(&format!(" AND profile_id IN {list}"));
            }
            clear.query().execute(&mut *self.tx).await?;
            let Some(mut next) =
                compile_next_checks(self.backend, org, rule, now_us, scope, lookup)?
            else {
                continue;
            };
            let o = next.statement.bind(Bind::Text(org.as_str().to_owned()));
            let s = next.statement.bind(Bind::Text(segment_id.to_owned()));
            next.statement.sql = format!(
                "INSERT INTO segment_checks (org_id, segment_id, profile_id, due_us) \
                 SELECT {o}, {s}, n.profile_id, n.due_us FROM ({}) n",
                next.statement.sql
            );
            next.statement
                .query_planned_for_values()
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Takes (deletes and returns) up to `limit` of the oldest marks.
    pub async fn take_dirty(&mut self, limit: u32) -> Result<Vec<DirtyMark>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, org_id, profile_id, cause FROM segment_dirty ORDER BY seq LIMIT $1",
        )
        .bind(i64::from(limit.max(1)))
        .fetch_all(&mut *self.tx)
        .await?;
        let marks = rows
            .iter()
            .map(|r| {
                Ok(DirtyMark {
                    seq: r.col(0)?,
                    org_id: r.col(1)?,
                    profile_id: r.col(2)?,
                    cause: r.col(3)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let seqs: Vec<i64> = marks.iter().map(|m| m.seq).collect();
        for chunk in seqs.chunks(500) {
            let mut st = Statement::new("DELETE FROM segment_dirty WHERE seq IN (");
            let markers: Vec<String> = chunk.iter().map(|s| st.bind(Bind::Int(*s))).collect();
            st.push(&markers.join(", "));
            st.push(")");
            st.query().execute(&mut *self.tx).await?;
        }
        Ok(marks)
    }

    /// Takes (deletes and returns) up to `limit` checks due at `now_us`.
    pub async fn take_due_checks(
        &mut self,
        now_us: i64,
        limit: u32,
    ) -> Result<Vec<DueCheck>, StoreError> {
        let rows = sqlx::query(
            "SELECT org_id, segment_id, profile_id, due_us FROM segment_checks \
             WHERE due_us <= $1 ORDER BY due_us LIMIT $2",
        )
        .bind(now_us)
        .bind(i64::from(limit.max(1)))
        .fetch_all(&mut *self.tx)
        .await?;
        let checks = rows
            .iter()
            .map(|r| {
                Ok(DueCheck {
                    org_id: r.col(0)?,
                    segment_id: r.col(1)?,
                    profile_id: r.col(2)?,
                    due_us: r.col(3)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        for c in &checks {
            sqlx::query(
                "DELETE FROM segment_checks WHERE org_id = $1 AND segment_id = $2 AND profile_id = $3 AND due_us = $4",
            )
            .bind(&c.org_id)
            .bind(&c.segment_id)
            .bind(&c.profile_id)
            .bind(c.due_us)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(checks)
    }
}

impl Db {
    /// Whether anything waits for the membership worker at `now_us`: marks,
    /// or checks come due. A read, so an idle worker writes nothing.
    pub async fn segment_work_pending(&self, now_us: i64) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM segment_dirty LIMIT 1) d) \
             + (SELECT COUNT(*) FROM (SELECT 1 FROM segment_checks WHERE due_us <= $1 LIMIT 1) c)",
        )
        .bind(now_us)
        .fetch_one(self.pool())
        .await?;
        Ok(row.col::<i64, _>(0)? > 0)
    }

    /// The earliest scheduled check, if any (the worker sleeps until then).
    pub async fn next_segment_check_us(&self) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MIN(due_us) FROM segment_checks")
            .fetch_one(self.pool())
            .await?;
        row.col(0)
    }
}

/// Marks, in the projection's transaction, profiles whose facts a batch
/// changed, when their organisation has segments (else nothing is written:
/// projection costs nothing more until a merchant saves a segment).
pub(crate) async fn mark_dirty(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    org: &str,
    marks: &[(String, String)],
) -> Result<(), StoreError> {
    if marks.is_empty() {
        return Ok(());
    }
    let any = sqlx::query("SELECT 1 FROM segments WHERE org_id = $1 LIMIT 1")
        .bind(org)
        .fetch_optional(&mut **tx)
        .await?;
    if any.is_none() {
        return Ok(());
    }
    let rows: Vec<Vec<Bind>> = marks
        .iter()
        .map(|(profile, cause)| {
            vec![
                Bind::Text(org.to_owned()),
                Bind::Text(profile.clone()),
                Bind::Text(cause.clone()),
            ]
        })
        .collect();
    for st in multi_insert(
        backend,
        "INSERT INTO segment_dirty (org_id, profile_id, cause)",
        &rows,
        "",
    ) {
        st.query().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Removes an erased profile from every segment and the feed, in the
/// erasure's transaction: its memberships leave the counts, its history
/// goes with it. Takes the membership lock (after the projection lock the
/// erasure holds; the worker never takes the projection lock, so the order
/// cannot deadlock).
pub(crate) async fn forget_profile(
    tx: &mut Transaction<'_, Any>,
    org: &str,
    profile_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE segment_membership_lock SET updated_at_us = $1 WHERE name = 'membership'")
        .bind(crate::now_micros())
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE segments SET member_count = member_count - 1 WHERE org_id = $1 AND segment_id IN \
         (SELECT segment_id FROM segment_members WHERE org_id = $1 AND profile_id = $2)",
    )
    .bind(org)
    .bind(profile_id)
    .execute(&mut **tx)
    .await?;
    for table in [
        "segment_members",
        "segment_changes",
        "segment_checks",
        "segment_dirty",
        "profile_rfm",
    ] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE org_id = $1 AND profile_id = $2"
        ))
        .bind(org)
        .bind(profile_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl SegmentTx {
    /// Every customer's figures (profiles with at least one purchase): the
    /// latest purchase time, the purchase count and the total net of
    /// refunds.
    pub async fn customer_figures(
        &mut self,
        org: &OrgId,
    ) -> Result<Vec<cohort_domain::segments::rfm::CustomerFigures>, StoreError> {
        let rows = sqlx::query(
            "SELECT profile_id, MAX(purchased_at_us), COUNT(*), CAST(SUM(net_total_e4) AS BIGINT) FROM orders \
             WHERE org_id = $1 AND purchased = 1 GROUP BY profile_id",
        )
        .bind(org.as_str())
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| {
                let last: Option<i64> = r.col(1)?;
                let spent_e4: i64 = r.col(3)?;
                Ok(cohort_domain::segments::rfm::CustomerFigures {
                    profile_id: r.col(0)?,
                    last_purchase_us: last.unwrap_or(0),
                    purchases: r.col(2)?,
                    spent: rust_decimal::Decimal::new(spent_e4, 4),
                })
            })
            .collect()
    }

    /// Replaces `org`'s RFM scores and records the run.
    pub async fn replace_rfm(
        &mut self,
        org: &OrgId,
        scores: &[cohort_domain::segments::rfm::RfmScore],
        now_us: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM profile_rfm WHERE org_id = $1")
            .bind(org.as_str())
            .execute(&mut *self.tx)
            .await?;
        let text = |s: &str| Bind::Text(s.to_owned());
        let rows: Vec<Vec<Bind>> = scores
            .iter()
            .map(|s| {
                vec![
                    text(org.as_str()),
                    text(&s.profile_id),
                    Bind::Int(s.recency),
                    Bind::Int(s.frequency),
                    Bind::Int(s.monetary),
                    text(s.group),
                    Bind::Int(now_us),
                ]
            })
            .collect();
        for st in multi_insert(
            self.backend,
            "INSERT INTO profile_rfm (org_id, profile_id, recency, frequency, monetary, rfm_group, updated_at_us)",
            &rows,
            "",
        ) {
            st.query().execute(&mut *self.tx).await?;
        }
        sqlx::query(
            "INSERT INTO rfm_runs (org_id, computed_at_us, customers) VALUES ($1, $2, $3) \
             ON CONFLICT (org_id) DO UPDATE SET computed_at_us = excluded.computed_at_us, customers = excluded.customers",
        )
        .bind(org.as_str())
        .bind(now_us)
        .bind(scores.len() as i64)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

/// One RFM group's size and revenue, for the grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RfmGroupSummary {
    pub group: String,
    pub customers: i64,
    /// Total spent by its customers, net of refunds, in ten-thousandths.
    pub spent_e4: i64,
}

impl Db {
    /// Organisations with purchases whose RFM was never computed or last
    /// computed before `stale_before_us`.
    pub async fn orgs_due_for_rfm(&self, stale_before_us: i64) -> Result<Vec<OrgId>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id FROM organisations o WHERE EXISTS \
             (SELECT 1 FROM orders d WHERE d.org_id = o.id AND d.purchased = 1) \
             AND NOT EXISTS (SELECT 1 FROM rfm_runs r WHERE r.org_id = o.id AND r.computed_at_us >= $1) \
             ORDER BY o.id",
        )
        .bind(stale_before_us)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(OrgId::from_stored(r.col::<String, _>(0)?)))
            .collect()
    }

    /// When `org`'s RFM was last computed, and for how many customers.
    pub async fn rfm_run(&self, org: &OrgId) -> Result<Option<(i64, i64)>, StoreError> {
        let row = sqlx::query("SELECT computed_at_us, customers FROM rfm_runs WHERE org_id = $1")
            .bind(org.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok((r.col(0)?, r.col(1)?))).transpose()
    }

    /// The RFM grid: each group's customers and what they spent.
    pub async fn rfm_groups(&self, org: &OrgId) -> Result<Vec<RfmGroupSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.rfm_group, COUNT(*), CAST(COALESCE(SUM(s.spent), 0) AS BIGINT) FROM profile_rfm r \
             LEFT JOIN (SELECT profile_id, SUM(net_total_e4) AS spent FROM orders \
                        WHERE org_id = $1 AND purchased = 1 GROUP BY profile_id) s ON s.profile_id = r.profile_id \
             WHERE r.org_id = $1 GROUP BY r.rfm_group ORDER BY r.rfm_group",
        )
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RfmGroupSummary {
                    group: r.col(0)?,
                    customers: r.col(1)?,
                    spent_e4: r.col(2)?,
                })
            })
            .collect()
    }

    /// One profile's RFM scores, if it has any.
    pub async fn profile_rfm(
        &self,
        org: &OrgId,
        profile_id: &str,
    ) -> Result<Option<cohort_domain::segments::RfmFacts>, StoreError> {
        let row = sqlx::query(
            "SELECT recency, frequency, monetary, rfm_group FROM profile_rfm WHERE org_id = $1 AND profile_id = $2",
        )
        .bind(org.as_str())
        .bind(profile_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(cohort_domain::segments::RfmFacts {
                recency: r.col(0)?,
                frequency: r.col(1)?,
                monetary: r.col(2)?,
                group: r.col(3)?,
            })
        })
        .transpose()
    }
}

impl Db {
    /// What the ready-made segments' amounts come from: the currency of the
    /// store's purchases (else of its connected installation), their count
    /// and total, the customers, and repeat customers' average gap.
    pub async fn store_figures(
        &self,
        org: &OrgId,
    ) -> Result<cohort_domain::segments::defaults::StoreFigures, StoreError> {
        let totals = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(net_total_e4), 0) AS BIGINT), COUNT(DISTINCT profile_id) \
             FROM orders WHERE org_id = $1 AND purchased = 1",
        )
        .bind(org.as_str())
        .fetch_one(self.pool())
        .await?;
        let gap = sqlx::query(
            "SELECT CAST(AVG(g.gap) AS BIGINT) FROM (SELECT (MAX(purchased_at_us) - MIN(purchased_at_us)) / (COUNT(*) - 1) AS gap \
             FROM orders WHERE org_id = $1 AND purchased = 1 GROUP BY profile_id HAVING COUNT(*) >= 2) g",
        )
        .bind(org.as_str())
        .fetch_one(self.pool())
        .await?;
        let currency = sqlx::query(
            "SELECT currency FROM (SELECT currency, COUNT(*) AS n FROM orders WHERE org_id = $1 AND purchased = 1 \
             GROUP BY currency) c ORDER BY n DESC, currency LIMIT 1",
        )
        .bind(org.as_str())
        .fetch_optional(self.pool())
        .await?;
        let currency: Option<String> = match currency {
            Some(r) => r.col(0)?,
            None => sqlx::query(
                "SELECT currency FROM connect_installations WHERE org_id = $1 AND currency IS NOT NULL \
                 ORDER BY created_at DESC LIMIT 1",
            )
            .bind(org.as_str())
            .fetch_optional(self.pool())
            .await?
            .map(|r| r.col(0))
            .transpose()?,
        };
        let spent_e4: i64 = totals.col(1)?;
        Ok(cohort_domain::segments::defaults::StoreFigures {
            currency,
            purchases: totals.col(0)?,
            spent: rust_decimal::Decimal::new(spent_e4, 4),
            customers: totals.col(2)?,
            average_gap_us: gap.col(0)?,
        })
    }

    /// Organisations with a store connected before `connected_before_us`
    /// (or with purchases) whose ready-made segments are not installed.
    pub async fn orgs_needing_default_segments(
        &self,
        connected_before_us: i64,
    ) -> Result<Vec<OrgId>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id FROM organisations o WHERE NOT EXISTS (SELECT 1 FROM segment_defaults d WHERE d.org_id = o.id) \
             AND EXISTS (SELECT 1 FROM connect_installations i WHERE i.org_id = o.id AND i.status = 'connected' \
                         AND (i.connected_at <= $1 OR EXISTS (SELECT 1 FROM orders r WHERE r.org_id = o.id AND r.purchased = 1))) \
             ORDER BY o.id",
        )
        .bind(connected_before_us)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(OrgId::from_stored(r.col::<String, _>(0)?)))
            .collect()
    }

    /// Records that `org`'s ready-made segments are installed; false if
    /// they already were.
    pub async fn mark_default_segments_installed(
        &self,
        org: &OrgId,
        now_us: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO segment_defaults (org_id, installed_at_us) VALUES ($1, $2) ON CONFLICT (org_id) DO NOTHING",
        )
        .bind(org.as_str())
        .bind(now_us)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Db {
    /// What the natural-language reader may name: the catalogue's products
    /// (not deleted), the categories order lines carry, the tags in use,
    /// the segments and the store's currency. Bounded: a few thousand of
    /// each at most.
    pub async fn segment_vocabulary(
        &self,
        org: &OrgId,
    ) -> Result<cohort_domain::segments::language::Vocabulary, StoreError> {
        use cohort_domain::segments::language::{CatalogueProduct, Vocabulary};
        let products = sqlx::query(
            "SELECT name, product_id, sku FROM products WHERE org_id = $1 AND deleted = 0 ORDER BY name LIMIT 5000",
        )
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(CatalogueProduct {
                name: r.col(0)?,
                id: r.col(1)?,
                sku: r.col(2)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let texts = |sql: &'static str| async move {
            sqlx::query(sql)
                .bind(org.as_str())
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(|r| r.col::<String, _>(0))
                .collect::<Result<Vec<_>, StoreError>>()
        };
        let categories = texts(
            "SELECT DISTINCT category FROM order_lines WHERE org_id = $1 AND category IS NOT NULL ORDER BY category LIMIT 2000",
        )
        .await?;
        let tags = texts(
            "SELECT DISTINCT tag FROM profile_tags WHERE org_id = $1 ORDER BY tag LIMIT 2000",
        )
        .await?;
        let segments = texts("SELECT name FROM segments WHERE org_id = $1 ORDER BY name").await?;
        let currency = self.store_figures(org).await?.currency;
        Ok(Vocabulary {
            products,
            categories,
            tags,
            segments,
            currency,
        })
    }
}
