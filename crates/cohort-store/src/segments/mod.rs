//! Segment rules compiled to SQL: one parameterised query per rule and
//! backend. Every value of a rule — names, trait keys, property keys,
//! numbers, times — is a bound parameter; the SQL text holds only the
//! compiler's own constants. Each condition is either a test on the
//! profile row or `p.profile_id [NOT] IN (…)` over one grouped,
//! uncorrelated aggregate (events by name and window, purchases, tags), so
//! a full recompute is one pass per condition, never a scan per profile.
//! Restricted to one profile (`Scope::Profile`), every aggregate filters
//! on that profile too. The semantics are the domain's
//! (`cohort_domain::segments::eval`, `docs/SEGMENTS.md`); a property test
//! holds the two equal on both backends.

mod compile;
mod saved;

pub use compile::{compile, compile_next_checks, CompileError, CompiledRule, Scope};
pub(crate) use saved::{forget_profile, mark_dirty};
pub use saved::{
    DailyCount, DirtyMark, DueCheck, MembershipDelta, NewSegment, ProfileSegment, RfmGroupSummary,
    SaveError, SegmentChange, SegmentFeedEntry, SegmentMember, SegmentRecord, SegmentTx, CAUSE_ANY,
    PROFILES_PER_QUERY,
};

use compile::{compile_select, Select};

use cohort_domain::ids::OrgId;
use cohort_domain::segments::Rule;

use crate::row::RowExt;
use crate::{Backend, Db, StoreError};

/// The first column of every row: profile ids.
fn ids(rows: &[sqlx::any::AnyRow]) -> Result<Vec<String>, SegmentQueryError> {
    Ok(rows
        .iter()
        .map(|r| r.col::<String, _>(0))
        .collect::<Result<_, _>>()?)
}

/// PostgreSQL: before a select over every profile, the tables segment SQL
/// reads are analysed when their statistics lag far behind their rows (a
/// store's history just imported, a second organisation's first events;
/// autovacuum catches up within minutes). Planned on statistics that
/// said an organisation had no events, one rule's full select ran for over
/// an hour on 15 k events; a stale-statistics check is one catalog read.
/// SQLite keeps no statistics Cohort relies on (its plans are fixed by the
/// SQL's join order).
pub(crate) async fn refresh_stale_statistics(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
) -> Result<(), sqlx::Error> {
    if backend != Backend::Postgres {
        return Ok(());
    }
    let stale: Option<String> = sqlx::query_scalar(
        "SELECT string_agg(quote_ident(relname), ', ') FROM pg_stat_user_tables \
         WHERE schemaname = current_schema() \
         AND relname IN ('events', 'cluster_events', 'profiles', 'profile_tags', 'orders', 'order_lines', 'segment_members') \
         AND n_mod_since_analyze > 1000 AND n_mod_since_analyze > n_live_tup / 5",
    )
    .fetch_one(&mut *conn)
    .await?;
    if let Some(tables) = stale {
        tracing::info!(%tables, "planner statistics out of date: analysing before a segment select");
        sqlx::query(&format!("ANALYZE {tables}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Why a rule's members could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum SegmentQueryError {
    /// The rule itself: an unknown or cyclic `in segment`, an amount too
    /// precise; the caller's 4xx.
    #[error(transparent)]
    Rule(#[from] CompileError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for SegmentQueryError {
    fn from(e: sqlx::Error) -> Self {
        SegmentQueryError::Store(e.into())
    }
}

impl Db {
    /// The ids of every profile of `org` the rule selects at `now_us`, in
    /// id order. `lookup` gives the rule of a segment named by `in segment`.
    pub async fn segment_members(
        &self,
        org: &OrgId,
        rule: &Rule,
        now_us: i64,
        lookup: &(dyn Fn(&str) -> Option<Rule> + Sync),
    ) -> Result<Vec<String>, SegmentQueryError> {
        let rows = self
            .select_over_all(org, rule, now_us, lookup, Select::Ids)
            .await?;
        ids(&rows)
    }

    /// How many profiles of `org` the rule selects at `now_us`: the
    /// editor's live count, without sending every id back.
    pub async fn segment_count(
        &self,
        org: &OrgId,
        rule: &Rule,
        now_us: i64,
        lookup: &(dyn Fn(&str) -> Option<Rule> + Sync),
    ) -> Result<u64, SegmentQueryError> {
        let rows = self
            .select_over_all(org, rule, now_us, lookup, Select::Count)
            .await?;
        let n: i64 = match rows.first() {
            Some(row) => row.col(0)?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The first `limit` profiles (in id order) the rule selects at
    /// `now_us`: a preview's sample, without listing every member.
    pub async fn segment_sample(
        &self,
        org: &OrgId,
        rule: &Rule,
        now_us: i64,
        lookup: &(dyn Fn(&str) -> Option<Rule> + Sync),
        limit: u32,
    ) -> Result<Vec<String>, SegmentQueryError> {
        let rows = self
            .select_over_all(org, rule, now_us, lookup, Select::FirstIds(limit))
            .await?;
        ids(&rows)
    }

    /// A rule's select over every profile of `org`, on statistics fresh
    /// enough to plan it.
    async fn select_over_all(
        &self,
        org: &OrgId,
        rule: &Rule,
        now_us: i64,
        lookup: &(dyn Fn(&str) -> Option<Rule> + Sync),
        select: Select,
    ) -> Result<Vec<sqlx::any::AnyRow>, SegmentQueryError> {
        let compiled = compile_select(
            self.backend(),
            org,
            rule,
            now_us,
            Scope::All,
            lookup,
            select,
        )?;
        let mut conn = self.pool().acquire().await?;
        refresh_stale_statistics(&mut conn, self.backend()).await?;
        Ok(compiled
            .statement
            .query_planned_for_values()
            .fetch_all(&mut *conn)
            .await?)
    }

    /// The plan of a rule's member query, one line per row: `EXPLAIN QUERY
    /// PLAN` on SQLite, `EXPLAIN` on PostgreSQL (`EXPLAIN ANALYZE`, which
    /// runs the query, with `analyze`). For benchmarks and diagnosis.
    pub async fn segment_plan(
        &self,
        org: &OrgId,
        rule: &Rule,
        now_us: i64,
        lookup: &dyn Fn(&str) -> Option<Rule>,
        analyze: bool,
    ) -> Result<Vec<String>, SegmentQueryError> {
        let compiled = compile(self.backend(), org, rule, now_us, Scope::All, lookup)?;
        let mut st = compiled.statement.clone();
        Ok(match self.backend() {
            crate::Backend::Sqlite => {
                st.sql = format!("EXPLAIN QUERY PLAN {}", st.sql);
                st.query_planned_for_values()
                    .fetch_all(self.pool())
                    .await?
                    .iter()
                    .map(|r| {
                        let id: i64 = r.col(0)?;
                        let parent: i64 = r.col(1)?;
                        let detail: String = r.col(3)?;
                        Ok(format!("{id:>4} {parent:>4}  {detail}"))
                    })
                    .collect::<Result<_, StoreError>>()?
            }
            crate::Backend::Postgres => {
                let how = if analyze {
                    "EXPLAIN (ANALYZE, BUFFERS)"
                } else {
                    "EXPLAIN"
                };
                st.sql = format!("{how} {}", st.sql);
                st.query_planned_for_values()
                    .fetch_all(self.pool())
                    .await?
                    .iter()
                    .map(|r| r.col::<String, _>(0))
                    .collect::<Result<_, _>>()?
            }
        })
    }

    /// Whether one profile is in the rule's segment at `now_us`.
    pub async fn segment_contains(
        &self,
        org: &OrgId,
        rule: &Rule,
        profile_id: &str,
        now_us: i64,
        lookup: &(dyn Fn(&str) -> Option<Rule> + Sync),
    ) -> Result<bool, SegmentQueryError> {
        let compiled = compile(
            self.backend(),
            org,
            rule,
            now_us,
            Scope::Profile(profile_id),
            lookup,
        )?;
        let rows = compiled
            .statement
            .query_planned_for_values()
            .fetch_all(self.pool())
            .await?;
        Ok(!rows.is_empty())
    }
}
