//! Erasure and export of one person's data.
//!
//! Erasing removes the profile, its identities, orders and tags, and strips
//! the personal data from its raw events (the rows stay, empty, so that a
//! retried delivery with the same messageId is still a duplicate). What
//! remains is an audit row without personal data and a SHA-256 of each
//! erased identity, so that a later profile carrying one is flagged instead
//! of silently resurrecting the person.

use cohort_domain::ids::{new_id, OrgId};
use cohort_domain::profile::{ClusterState, OrderView, ProfileView};
use serde::Serialize;

use super::projector::{erased_identity_digest, lock_projection, OrgBatch};
use crate::row::{parse_json, RowExt};
use crate::sql::{multi_insert, Bind, Statement};
use crate::{Db, StoreError};

#[derive(Debug, Clone, Serialize)]
pub struct ErasureReport {
    pub erasure_id: String,
    pub profile_id: String,
    pub erased_at_us: i64,
    pub identities: i64,
    pub events: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProfileExport {
    pub profile: ProfileView,
    pub previously_erased: bool,
    pub orders: Vec<OrderView>,
    /// Every event of the profile as stored, oldest first.
    pub events: Vec<serde_json::Value>,
}

impl Db {
    pub async fn erase_profile(
        &self,
        org: &OrgId,
        profile_id: &str,
    ) -> Result<Option<ErasureReport>, StoreError> {
        let Some(record) = self.profile(org, profile_id).await? else {
            return Ok(None);
        };
        let profile_id = record.profile.id;
        let now = crate::now_micros();
        let mut tx = self.begin_write().await?;
        lock_projection(&mut tx).await?;

        let row =
            sqlx::query("SELECT cluster_id FROM profiles WHERE org_id = $1 AND profile_id = $2")
                .bind(org.as_str())
                .bind(&profile_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let cluster: String = row.col(0)?;
        let state_row = sqlx::query(
            "SELECT state FROM identity_clusters WHERE org_id = $1 AND cluster_id = $2",
        )
        .bind(org.as_str())
        .bind(&cluster)
        .fetch_one(&mut *tx)
        .await?;
        let state: ClusterState =
            serde_json::from_str(&state_row.col::<String, _>(0)?).map_err(|e| {
                StoreError::Invalid(format!("cluster {cluster} has an unreadable state: {e}"))
            })?;
        let Some(profile) = state.profiles.get(&profile_id) else {
            return Ok(None);
        };

        // The raw events: personal data out, the row kept as a tombstone.
        let seqs: Vec<i64> =
            sqlx::query("SELECT seq FROM cluster_events WHERE org_id = $1 AND profile_id = $2")
                .bind(org.as_str())
                .bind(&profile_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.col::<i64, _>(0))
                .collect::<Result<_, _>>()?;
        // Identities, including the ids of the person's orders and any other
        // id their events name (an alias's previous id); ids that remaining
        // events still name get their rows back from the refold below.
        let mut named = std::collections::BTreeSet::new();
        for chunk in seqs.chunks(500) {
            let mut st = Statement::new("SELECT seq, source_id, message_id, type, timestamp_us, payload FROM events WHERE org_id = $1 AND seq IN ");
            st.bind(Bind::Text(org.as_str().to_owned()));
            let markers: Vec<String> = chunk.iter().map(|s| st.bind(Bind::Int(*s))).collect();
            st.push(&format!("({})", markers.join(", ")));
            for row in st.query().fetch_all(&mut *tx).await? {
                named.extend(cohort_domain::profile::cluster_identities(
                    &super::projector::log_event(&row)?,
                ));
            }
        }
        let mut identities: Vec<String> = profile
            .identities
            .iter()
            .map(|i| i.key().to_owned())
            .collect();
        identities.extend(
            named
                .iter()
                .map(|i| i.key().to_owned())
                .filter(|k| !profile.identities.iter().any(|i| i.key() == k)),
        );
        identities.extend(
            state
                .orders
                .iter()
                .filter(|(_, o)| state.survivor(&o.profile) == profile_id)
                .map(|(k, _)| format!("order:{k}")),
        );
        identities.sort();
        identities.dedup();
        for chunk in seqs.chunks(500) {
            let mut st = Statement::new(
                "UPDATE events SET payload = '{}', user_id = NULL, anonymous_id = NULL, email = NULL, notes = NULL, erased_at_us = $1 \
                 WHERE org_id = $2 AND seq IN ",
            );
            st.bind(Bind::Int(now));
            st.bind(Bind::Text(org.as_str().to_owned()));
            let markers: Vec<String> = chunk.iter().map(|s| st.bind(Bind::Int(*s))).collect();
            st.push(&format!("({})", markers.join(", ")));
            st.query().execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM cluster_events WHERE org_id = $1 AND profile_id = $2")
            .bind(org.as_str())
            .bind(&profile_id)
            .execute(&mut *tx)
            .await?;

        for chunk in identities.chunks(500) {
            let mut st =
                Statement::new("DELETE FROM identities WHERE org_id = $1 AND identity IN ");
            st.bind(Bind::Text(org.as_str().to_owned()));
            let list = st.in_list(chunk.iter().map(String::as_str));
            st.push(&list);
            st.query().execute(&mut *tx).await?;
        }
        let digests: Vec<Vec<Bind>> = profile
            .identities
            .iter()
            .map(|i| {
                vec![
                    Bind::Text(org.as_str().to_owned()),
                    Bind::Text(erased_identity_digest(org.as_str(), i)),
                    Bind::Int(now),
                ]
            })
            .collect();
        for st in multi_insert(
            self.backend(),
            "INSERT INTO erased_identities (org_id, digest, erased_at_us)",
            &digests,
            "ON CONFLICT DO NOTHING",
        ) {
            st.query().execute(&mut *tx).await?;
        }
        let report = ErasureReport {
            erasure_id: new_id("era"),
            profile_id: profile_id.clone(),
            erased_at_us: now,
            identities: identities.len() as i64,
            events: seqs.len() as i64,
        };
        sqlx::query(
            "INSERT INTO erasures (org_id, erasure_id, profile_id, erased_at_us, identities_count, events_count) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(org.as_str())
        .bind(&report.erasure_id)
        .bind(&report.profile_id)
        .bind(report.erased_at_us)
        .bind(report.identities)
        .bind(report.events)
        .execute(&mut *tx)
        .await?;
        // Merge records naming the erased profile go with it.
        sqlx::query("DELETE FROM profile_merges WHERE org_id = $1 AND (into_profile = $2 OR from_profile = $2)")
            .bind(org.as_str())
            .bind(&profile_id)
            .execute(&mut *tx)
            .await?;

        // The rest of the cluster (other people who shared a device, say)
        // is refolded from what remains.
        let mut batch = OrgBatch::new(org.as_str());
        batch
            .load_cluster_states(&mut tx, vec![cluster.clone()])
            .await?;
        batch.mark_for_refold(&cluster);
        batch.refold_marked(&mut tx).await?;
        let empty = batch.cluster_is_empty(&cluster);
        batch.write(&mut tx, self.backend()).await?;
        if empty {
            sqlx::query("DELETE FROM identity_clusters WHERE org_id = $1 AND cluster_id = $2")
                .bind(org.as_str())
                .bind(&cluster)
                .execute(&mut *tx)
                .await?;
        }
        crate::segments::forget_profile(&mut tx, org.as_str(), &profile_id).await?;
        tx.commit().await?;
        Ok(Some(report))
    }

    /// Everything Cohort holds about a profile, as one document.
    pub async fn export_profile(
        &self,
        org: &OrgId,
        profile_id: &str,
    ) -> Result<Option<ProfileExport>, StoreError> {
        let Some(record) = self.profile(org, profile_id).await? else {
            return Ok(None);
        };
        let id = record.profile.id.clone();
        let mut orders = Vec::new();
        let mut before = None;
        loop {
            let page = self
                .list_orders(
                    org,
                    &super::reads::OrderFilter {
                        profile_id: Some(id.clone()),
                        before: before.clone(),
                        limit: 1000,
                        ..Default::default()
                    },
                )
                .await?;
            let done = page.len() < 1000;
            before = page.last().map(|(created, o)| (*created, o.key.clone()));
            orders.extend(page.into_iter().map(|(_, o)| o));
            if done {
                break;
            }
        }
        let mut events = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.profile_timeline(org, &id, cursor, 1000).await?;
            let done = page.len() < 1000;
            cursor = page.last().map(|e| (e.timestamp_us, e.seq));
            for event in page {
                events.push(parse_json::<serde_json::Value>("payload", &event.payload)?);
            }
            if done {
                break;
            }
        }
        events.reverse();
        Ok(Some(ProfileExport {
            profile: record.profile,
            previously_erased: record.previously_erased,
            orders,
            events,
        }))
    }
}
