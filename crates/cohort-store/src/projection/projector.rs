//! The projector: reads the log in `seq` order and keeps profiles,
//! identities, orders, products and tags current. The rules are the
//! domain's fold; this module finds each event's cluster, folds it (or
//! refolds the cluster when the event is out of order or joins clusters)
//! and writes what changed, all in one transaction with the cursor.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use cohort_domain::commerce::Product;
use cohort_domain::ids::new_id;
use cohort_domain::profile::{
    cluster_identities, interpret, ClusterState, DerivedEvent, Identity, IdentityKind, LogEvent,
    OrderView,
};
use sqlx::{Any, Transaction};

use crate::row::RowExt;
use crate::sql::{multi_insert, Bind, Statement};
use crate::{Backend, Db, StoreError};

/// The log cursor of the projection (a `projection_cursor` row).
pub const PROFILES_CURSOR: &str = "profiles";

/// Events per projection transaction.
pub const BATCH_EVENTS: i64 = 1000;

pub(crate) use crate::log_cursor::PG_APPEND_LOCK;

#[derive(Clone)]
pub struct Projector {
    db: Db,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StepReport {
    pub events: usize,
    pub last_seq: i64,
}

/// The lock every projection write takes first: batches, erasures and
/// resets run one at a time, across processes and nodes.
pub(crate) async fn lock_projection(tx: &mut Transaction<'_, Any>) -> Result<i64, StoreError> {
    sqlx::query("UPDATE projection_cursor SET updated_at_us = $1 WHERE name = 'profiles'")
        .bind(crate::now_micros())
        .execute(&mut **tx)
        .await?;
    let row = sqlx::query("SELECT last_seq FROM projection_cursor WHERE name = 'profiles'")
        .fetch_one(&mut **tx)
        .await?;
    row.col(0)
}

pub(crate) fn log_event(row: &sqlx::any::AnyRow) -> Result<LogEvent, StoreError> {
    Ok(LogEvent {
        seq: row.col("seq")?,
        source_id: row.col("source_id")?,
        message_id: row.col("message_id")?,
        message_type: row.col("type")?,
        timestamp_us: row.col("timestamp_us")?,
        message: row.col_json("payload")?,
    })
}

impl Projector {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Projects the next batch of the log; returns how many events it read.
    /// The batch comes from the log follower's cursor `profiles` (read up to
    /// the PostgreSQL horizon, the cursor row locked, moved with the writes);
    /// an idle step writes nothing: on SQLite a write every poll makes other
    /// read-then-write transactions fail with SQLITE_BUSY.
    pub async fn step(&self) -> Result<StepReport, StoreError> {
        let Some(mut batch) = self
            .db
            .next_log_batch(PROFILES_CURSOR, BATCH_EVENTS)
            .await?
        else {
            return Ok(StepReport {
                events: 0,
                last_seq: self.db.log_cursor(PROFILES_CURSOR).await?,
            });
        };
        let mut by_org: BTreeMap<String, Vec<LogEvent>> = BTreeMap::new();
        for followed in batch.events() {
            if followed.erased {
                continue;
            }
            let event = &followed.event;
            let message = serde_json::from_str(&event.payload)
                .map_err(|e| StoreError::decode("payload", e))?;
            by_org
                .entry(followed.org_id.as_str().to_owned())
                .or_default()
                .push(LogEvent {
                    seq: event.seq,
                    source_id: event.source_id.clone(),
                    message_id: event.message_id.clone(),
                    message_type: event.message_type.clone(),
                    timestamp_us: event.timestamp_us,
                    message,
                });
        }
        let report = StepReport {
            events: batch.events().len(),
            last_seq: batch.events().last().map_or(0, |e| e.event.seq),
        };
        let backend = self.db.backend();
        for (org, events) in by_org {
            OrgBatch::new(&org)
                .project(batch.tx(), backend, events)
                .await?;
        }
        batch.commit().await?;
        Ok(report)
    }

    /// Projects until the log is read to its end; returns the events read.
    pub async fn catch_up(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let report = self.step().await?;
            total += report.events as u64;
            if report.events == 0 {
                return Ok(total);
            }
        }
    }

    /// Drops every projection and rewinds the cursor, so the next steps
    /// rebuild everything from the log. Erasure records stay.
    pub async fn reset(&self) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().await?;
        lock_projection(&mut tx).await?;
        for table in [
            "identity_clusters",
            "identities",
            "cluster_events",
            "profiles",
            "profile_tags",
            "profile_merges",
            "orders",
            "order_lines",
            "products",
        ] {
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE projection_cursor SET last_seq = 0 WHERE name = 'profiles'")
            .execute(&mut *tx)
            .await?;
        // Every current member is evaluated again once rebuilt: a profile
        // that does not come back (merged otherwise) must leave its
        // segments, and the rebuild only marks the profiles it writes.
        sqlx::query(
            "INSERT INTO segment_dirty (org_id, profile_id, cause) \
             SELECT DISTINCT org_id, profile_id, 'any' FROM segment_members",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Runs until aborted: a step whenever the log has grown, checking
    /// every `poll` when idle.
    pub fn spawn(self, poll: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                // Each step in its own task: a bug that panics on one batch
                // is logged and retried instead of ending projection.
                let projector = self.clone();
                match tokio::spawn(async move { projector.step().await }).await {
                    Ok(Ok(report)) if report.events as i64 >= BATCH_EVENTS => continue,
                    Ok(Ok(_)) => tokio::time::sleep(poll).await,
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "projection step failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(error) => {
                        tracing::error!(%error, "projection step panicked; retrying");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
            }
        })
    }
}

/// One cluster's work in a batch.
struct ClusterWork {
    state: ClusterState,
    loaded_profiles: BTreeSet<String>,
    loaded_orders: BTreeSet<String>,
    /// Clusters merged into this one in this batch.
    absorbed: Vec<String>,
    batch_events: Vec<LogEvent>,
    refold: bool,
    placements: Vec<(i64, Option<String>)>,
    profile_merges: Vec<(String, String)>,
    touched_orders: BTreeSet<String>,
    identities: BTreeSet<Identity>,
    /// The cluster had merge records when loaded.
    had_merges: bool,
}

impl ClusterWork {
    fn new(state: ClusterState) -> Self {
        Self {
            loaded_profiles: state.profiles.keys().cloned().collect(),
            loaded_orders: state.orders.keys().cloned().collect(),
            had_merges: !state.merges.is_empty(),
            state,
            absorbed: Vec::new(),
            batch_events: Vec::new(),
            refold: false,
            placements: Vec::new(),
            profile_merges: Vec::new(),
            touched_orders: BTreeSet::new(),
            identities: BTreeSet::new(),
        }
    }
}

pub(crate) struct OrgBatch {
    org: String,
    clusters: HashMap<String, ClusterWork>,
    identity_cluster: HashMap<Identity, String>,
    products: Vec<(Product, bool, String)>,
    derived: BTreeMap<String, DerivedEvent>,
}

impl OrgBatch {
    pub(crate) fn new(org: &str) -> Self {
        Self {
            org: org.to_owned(),
            clusters: HashMap::new(),
            identity_cluster: HashMap::new(),
            products: Vec::new(),
            derived: BTreeMap::new(),
        }
    }

    async fn project(
        mut self,
        tx: &mut Transaction<'_, Any>,
        backend: Backend,
        events: Vec<LogEvent>,
    ) -> Result<(), StoreError> {
        let parsed: Vec<(LogEvent, Vec<Identity>)> = events
            .into_iter()
            .map(|e| {
                let ids = cluster_identities(&e);
                (e, ids)
            })
            .collect();
        let all_ids: BTreeSet<&Identity> = parsed.iter().flat_map(|(_, ids)| ids.iter()).collect();
        self.load_clusters_of(tx, all_ids.into_iter().map(Identity::key).collect())
            .await?;

        for (event, ids) in parsed {
            self.place(event, ids);
        }
        self.refold_marked(tx).await?;
        self.write(tx, backend).await
    }

    /// Loads the clusters that own any of these identities.
    pub(crate) async fn load_clusters_of(
        &mut self,
        tx: &mut Transaction<'_, Any>,
        keys: Vec<&str>,
    ) -> Result<(), StoreError> {
        let mut cluster_ids = BTreeSet::new();
        for chunk in keys.chunks(500) {
            let mut st =
                Statement::new("SELECT identity, cluster_id FROM identities WHERE org_id = ");
            let m = st.bind(Bind::Text(self.org.clone()));
            st.push(&m);
            let list = st.in_list(chunk.iter().copied());
            st.push(&format!(" AND identity IN {list}"));
            for row in st.query().fetch_all(&mut **tx).await? {
                let identity: String = row.col(0)?;
                let cluster: String = row.col(1)?;
                if let Some(id) = Identity::from_key(&identity) {
                    self.identity_cluster.insert(id, cluster.clone());
                }
                cluster_ids.insert(cluster);
            }
        }
        self.load_cluster_states(tx, cluster_ids.into_iter().collect())
            .await
    }

    pub(crate) async fn load_cluster_states(
        &mut self,
        tx: &mut Transaction<'_, Any>,
        ids: Vec<String>,
    ) -> Result<(), StoreError> {
        for chunk in ids.chunks(500) {
            let mut st =
                Statement::new("SELECT cluster_id, state FROM identity_clusters WHERE org_id = ");
            let m = st.bind(Bind::Text(self.org.clone()));
            st.push(&m);
            let list = st.in_list(chunk.iter().map(String::as_str));
            st.push(&format!(" AND cluster_id IN {list}"));
            for row in st.query().fetch_all(&mut **tx).await? {
                let id: String = row.col(0)?;
                let state: String = row.col(1)?;
                let state: ClusterState = serde_json::from_str(&state).map_err(|e| {
                    StoreError::Invalid(format!("cluster {id} has an unreadable state: {e}"))
                })?;
                self.clusters.insert(id, ClusterWork::new(state));
            }
        }
        Ok(())
    }

    /// Finds (or makes) the event's cluster and folds the event onto it,
    /// or marks the cluster for a refold.
    fn place(&mut self, event: LogEvent, ids: Vec<Identity>) {
        if ids.is_empty() {
            if let interpret::Commerce::Product { product, deleted } =
                interpret::interpret(&event).commerce
            {
                let version = format!(
                    "{:020}|{:020}|{}",
                    product.modified_at_us, event.timestamp_us, event.message_id
                );
                self.products.push((product, deleted, version));
            }
            return;
        }
        let found: BTreeSet<String> = ids
            .iter()
            .filter_map(|i| self.identity_cluster.get(i).cloned())
            .collect();
        let cluster = match found.len() {
            0 => {
                let id = new_id("clu");
                self.clusters
                    .insert(id.clone(), ClusterWork::new(ClusterState::default()));
                id
            }
            1 => found.into_iter().next().unwrap_or_default(),
            _ => self.join_clusters(found),
        };
        for id in &ids {
            self.identity_cluster.insert(id.clone(), cluster.clone());
        }
        let Some(work) = self.clusters.get_mut(&cluster) else {
            return;
        };
        work.identities.extend(ids.iter().cloned());
        work.batch_events.push(event.clone());
        if work.refold {
            return;
        }
        if event.is_derived() || work.state.accepts_next(&event) {
            let applied = work.state.apply(&event);
            if applied.order_moved {
                work.refold = true;
                return;
            }
            work.placements.push((event.seq, applied.profile));
            for m in applied.merges {
                work.profile_merges.push((m.from, m.into));
            }
            for d in applied.derived {
                self.derived.insert(d.message_id.clone(), d);
            }
            for id in ids.iter().filter(|i| i.kind() == IdentityKind::Order) {
                work.touched_orders.insert(id.value().to_owned());
            }
        } else {
            work.refold = true;
        }
    }

    /// Joins clusters an event links; the one with the most identities
    /// keeps its id.
    fn join_clusters(&mut self, ids: BTreeSet<String>) -> String {
        let keep = ids
            .iter()
            .max_by_key(|id| {
                (
                    self.clusters.get(*id).map_or(0, |w| w.state.owners.len()),
                    (*id).clone(),
                )
            })
            .cloned()
            .unwrap_or_default();
        for other in ids.into_iter().filter(|id| *id != keep) {
            let Some(gone) = self.clusters.remove(&other) else {
                continue;
            };
            for cluster in self.identity_cluster.values_mut() {
                if *cluster == other {
                    cluster.clone_from(&keep);
                }
            }
            if let Some(work) = self.clusters.get_mut(&keep) {
                work.batch_events.extend(gone.batch_events);
                work.loaded_profiles.extend(gone.loaded_profiles);
                work.loaded_orders.extend(gone.loaded_orders);
                work.identities.extend(gone.identities);
                work.had_merges |= gone.had_merges;
                work.absorbed.push(other);
                work.absorbed.extend(gone.absorbed);
                work.refold = true;
            }
        }
        keep
    }

    pub(crate) fn mark_for_refold(&mut self, cluster: &str) {
        if let Some(work) = self.clusters.get_mut(cluster) {
            work.refold = true;
        }
    }

    pub(crate) fn cluster_is_empty(&self, cluster: &str) -> bool {
        self.clusters
            .get(cluster)
            .is_none_or(|w| w.state.profiles.is_empty() && w.state.orders.is_empty())
    }

    /// Refolds every cluster marked for it from all its events.
    pub(crate) async fn refold_marked(
        &mut self,
        tx: &mut Transaction<'_, Any>,
    ) -> Result<(), StoreError> {
        let marked: Vec<String> = self
            .clusters
            .iter()
            .filter(|(_, w)| w.refold)
            .map(|(id, _)| id.clone())
            .collect();
        for cluster in marked {
            let Some(work) = self.clusters.get_mut(&cluster) else {
                continue;
            };
            let mut st = Statement::new(
                "SELECT e.seq, e.source_id, e.message_id, e.type, e.timestamp_us, e.payload FROM cluster_events ce \
                 JOIN events e ON e.org_id = ce.org_id AND e.seq = ce.seq WHERE ce.org_id = ",
            );
            let m = st.bind(Bind::Text(self.org.clone()));
            st.push(&m);
            let mut ids = vec![cluster.as_str()];
            ids.extend(work.absorbed.iter().map(String::as_str));
            let list = st.in_list(ids);
            st.push(&format!(
                " AND ce.cluster_id IN {list} AND e.erased_at_us IS NULL"
            ));
            let mut events: BTreeMap<i64, LogEvent> = st
                .query()
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(|r| Ok((r.col::<i64, _>("seq")?, log_event(r)?)))
                .collect::<Result<_, StoreError>>()?;
            for e in &work.batch_events {
                events.insert(e.seq, e.clone());
            }
            let mut events: Vec<LogEvent> = events.into_values().collect();
            // Every identity the cluster's events name gets its row back,
            // links included (an erasure deletes rows before refolding).
            for e in &events {
                work.identities.extend(cluster_identities(e));
            }
            let (state, placed, derived) = ClusterState::fold(&mut events);
            work.state = state;
            let placed: HashMap<i64, String> = placed.into_iter().collect();
            work.placements = events
                .iter()
                .map(|e| (e.seq, placed.get(&e.seq).cloned()))
                .collect();
            for d in derived {
                self.derived.insert(d.message_id.clone(), d);
            }
        }
        Ok(())
    }

    pub(crate) async fn write(
        self,
        tx: &mut Transaction<'_, Any>,
        backend: Backend,
    ) -> Result<(), StoreError> {
        let org = self.org.clone();
        let now = crate::now_micros();
        let text = |s: &str| Bind::Text(s.to_owned());

        let erased_digests = new_profile_erasure_digests(tx, &org, &self.clusters).await?;

        // Rows of every touched cluster, written table by table: a batch
        // touches hundreds of clusters, and a statement per cluster and
        // table was most of a batch's time.
        let mut cluster_rows = Vec::new();
        let mut identity_rows: Vec<Vec<Bind>> = Vec::new();
        let mut placement_rows = Vec::new();
        let mut touched_profiles: Vec<String> = Vec::new();
        let mut stale_profiles: Vec<String> = Vec::new();
        let mut profile_rows = Vec::new();
        let mut tag_rows = Vec::new();
        let mut merge_clusters: Vec<String> = Vec::new();
        let mut merge_rows = Vec::new();
        let mut stale_orders: Vec<String> = Vec::new();
        let mut order_rows = Vec::new();
        let mut rewritten_orders: Vec<String> = Vec::new();
        let mut line_rows: Vec<Vec<Bind>> = Vec::new();
        let mut dirty_marks: Vec<(String, String)> = Vec::new();

        for (cluster, work) in &self.clusters {
            let state = &work.state;
            let state_json =
                serde_json::to_string(state).map_err(|e| StoreError::Invalid(e.to_string()))?;
            cluster_rows.push(vec![
                text(&org),
                text(cluster),
                Bind::Text(state_json),
                Bind::Int(now),
            ]);

            if !work.absorbed.is_empty() {
                for action in [
                    "DELETE FROM identity_clusters",
                    "UPDATE identities SET cluster_id = $2",
                    "UPDATE cluster_events SET cluster_id = $2",
                    "UPDATE orders SET cluster_id = $2",
                    "UPDATE profiles SET cluster_id = $2",
                ] {
                    let mut st = Statement::new(action);
                    st.bind(text(&org));
                    if action.contains("$2") {
                        st.bind(text(cluster));
                    }
                    let list = st.in_list(work.absorbed.iter().map(String::as_str));
                    st.push(&format!(" WHERE org_id = $1 AND cluster_id IN {list}"));
                    st.query().execute(&mut **tx).await?;
                }
            }

            // Identities: every one this batch named, and every owner.
            let mut rows: BTreeMap<&Identity, Option<&str>> = BTreeMap::new();
            for id in &work.identities {
                rows.insert(id, state.owners.get(id).map(|p| state.survivor(p)));
            }
            for (id, profile) in &state.owners {
                rows.insert(id, Some(state.survivor(profile)));
            }
            identity_rows.extend(rows.into_iter().map(|(id, p)| {
                vec![
                    text(&org),
                    text(id.key()),
                    text(cluster),
                    Bind::OptText(p.map(str::to_owned)),
                ]
            }));

            // Events: where each landed.
            for (from, into) in &work.profile_merges {
                sqlx::query("UPDATE cluster_events SET profile_id = $1 WHERE org_id = $2 AND profile_id = $3")
                    .bind(state.survivor(into))
                    .bind(&org)
                    .bind(from)
                    .execute(&mut **tx)
                    .await?;
            }
            placement_rows.extend(work.placements.iter().map(|(seq, p)| {
                vec![
                    text(&org),
                    Bind::Int(*seq),
                    text(cluster),
                    Bind::OptText(p.as_deref().map(|p| state.survivor(p).to_owned())),
                ]
            }));

            // Segment marks: what this batch's events could change, for
            // every profile of the cluster (a superset: the events of a
            // cluster land on one or two profiles); anything after a
            // merge or refold, and a profile merged away.
            let mut causes: BTreeSet<String> = work
                .batch_events
                .iter()
                .map(|e| match e.message.get("event").and_then(|v| v.as_str()) {
                    Some(name) if e.message_type == "track" => format!("track:{name}"),
                    _ => e.message_type.clone(),
                })
                .collect();
            if work.refold || !work.absorbed.is_empty() || !work.profile_merges.is_empty() {
                causes.insert(crate::segments::CAUSE_ANY.to_owned());
            }

            // Profiles and their tags.
            for id in work
                .loaded_profiles
                .iter()
                .filter(|p| !state.profiles.contains_key(*p))
            {
                stale_profiles.push(id.clone());
                touched_profiles.push(id.clone());
                dirty_marks.push((id.clone(), crate::segments::CAUSE_ANY.to_owned()));
            }
            for id in state.profiles.keys() {
                if work.loaded_profiles.contains(id) {
                    dirty_marks.extend(causes.iter().map(|c| (id.clone(), c.clone())));
                } else {
                    // A new profile can enter any segment (`not …` holds
                    // for it whatever the event was).
                    dirty_marks.push((id.clone(), crate::segments::CAUSE_ANY.to_owned()));
                }
            }
            for id in state.profiles.keys() {
                let Some(view) = state.view(id) else { continue };
                touched_profiles.push(id.clone());
                let is_new = !work.loaded_profiles.contains(id);
                let flagged = is_new
                    && state.profiles[id]
                        .identities
                        .iter()
                        .any(|i| erased_digests.contains(&erased_identity_digest(&org, i)));
                for tag in &view.tags {
                    tag_rows.push(vec![text(&org), text(tag), text(id)]);
                }
                let last_order = state
                    .orders
                    .values()
                    .filter(|o| o.profile == *id && o.counts_as_purchase())
                    .map(|o| o.paid_at_us().unwrap_or(o.order.created_at_us))
                    .max();
                let p = &state.profiles[id];
                profile_rows.push(vec![
                    text(&org),
                    text(id),
                    text(cluster),
                    Bind::OptText(view.user_id.clone()),
                    Bind::OptText(view.email.clone()),
                    Bind::Int(p.first_seen_us),
                    Bind::Int(p.last_seen_us),
                    Bind::Int(view.metrics.order_count as i64),
                    Bind::OptInt(last_order),
                    Bind::Int(i64::from(flagged)),
                    Bind::Text(
                        serde_json::to_string(&view)
                            .map_err(|e| StoreError::Invalid(e.to_string()))?,
                    ),
                ]);
            }

            // Merges, for following an old profile id to its survivor.
            if work.had_merges || !state.merges.is_empty() || !work.absorbed.is_empty() {
                merge_clusters.push(cluster.clone());
                merge_clusters.extend(work.absorbed.iter().cloned());
            }
            merge_rows.extend(state.merges.iter().map(|m| {
                let ids: Vec<&str> = m.identities.iter().map(Identity::key).collect();
                vec![
                    text(&org),
                    text(&m.from),
                    text(state.survivor(&m.into)),
                    text(cluster),
                    text(&m.message_id),
                    Bind::Text(serde_json::to_string(&ids).unwrap_or_default()),
                    Bind::Int(m.at_us),
                ]
            }));

            // Orders: all of them after a refold or a merge, else the ones touched.
            let rewrite_all =
                work.refold || !work.profile_merges.is_empty() || !work.absorbed.is_empty();
            if rewrite_all {
                stale_orders.extend(
                    work.loaded_orders
                        .iter()
                        .filter(|k| !state.orders.contains_key(*k))
                        .cloned(),
                );
            }
            for (key, o) in state
                .orders
                .iter()
                .filter(|(key, _)| rewrite_all || work.touched_orders.contains(*key))
            {
                rewritten_orders.push(key.clone());
                if !o.counts_as_purchase() {
                    continue;
                }
                let at = o.paid_at_us().unwrap_or(o.order.created_at_us);
                for (i, line) in o.order.line_items.iter().enumerate() {
                    line_rows.push(vec![
                        text(&org),
                        text(key),
                        Bind::Int(i as i64),
                        text(state.survivor(&o.profile)),
                        Bind::OptText(line.product_id.clone()),
                        Bind::OptText(line.sku.clone()),
                        Bind::OptText(line.category.clone()),
                        Bind::Int(at),
                    ]);
                }
            }
            order_rows.extend(
                state
                    .orders
                    .iter()
                    .filter(|(key, _)| rewrite_all || work.touched_orders.contains(*key))
                    .map(|(key, o)| {
                        let mut view = OrderView::from_state(key, o);
                        view.profile_id = state.survivor(&o.profile).to_owned();
                        let purchased = o.counts_as_purchase();
                        vec![
                            text(&org),
                            text(key),
                            text(&o.order.store),
                            text(&o.order.order_id),
                            Bind::Text(view.profile_id.clone()),
                            text(cluster),
                            text(&o.order.status),
                            text(&o.order.currency),
                            Bind::Text(o.order.total.to_string()),
                            Bind::Int(o.order.created_at_us),
                            Bind::Text(serde_json::to_string(&view).unwrap_or_default()),
                            Bind::Int(i64::from(purchased)),
                            Bind::OptInt(
                                purchased.then(|| o.paid_at_us().unwrap_or(o.order.created_at_us)),
                            ),
                            Bind::Int(ten_thousandths(o.order.total - o.refunded_total())),
                        ]
                    }),
            );
        }

        let statements = multi_insert(
            backend,
            "INSERT INTO identity_clusters (org_id, cluster_id, state, updated_at_us)",
            &cluster_rows,
            "ON CONFLICT (org_id, cluster_id) DO UPDATE SET state = excluded.state, updated_at_us = excluded.updated_at_us",
        )
        .into_iter()
        .chain(multi_insert(
            backend,
            "INSERT INTO identities (org_id, identity, cluster_id, profile_id)",
            &identity_rows,
            "ON CONFLICT (org_id, identity) DO UPDATE SET cluster_id = excluded.cluster_id, profile_id = excluded.profile_id",
        ))
        .chain(multi_insert(
            backend,
            "INSERT INTO cluster_events (org_id, seq, cluster_id, profile_id)",
            &placement_rows,
            "ON CONFLICT (org_id, seq) DO UPDATE SET cluster_id = excluded.cluster_id, profile_id = excluded.profile_id",
        ))
        .chain(delete_in(backend, &org, "profile_tags", "profile_id", &touched_profiles))
        .chain(delete_in(backend, &org, "profiles", "profile_id", &stale_profiles))
        .chain(multi_insert(
            backend,
            "INSERT INTO profiles (org_id, profile_id, cluster_id, user_id, email, first_seen_us, last_seen_us, \
             order_count, last_order_us, previously_erased, doc)",
            &profile_rows,
            "ON CONFLICT (org_id, profile_id) DO UPDATE SET cluster_id = excluded.cluster_id, user_id = excluded.user_id, \
             email = excluded.email, first_seen_us = excluded.first_seen_us, last_seen_us = excluded.last_seen_us, \
             order_count = excluded.order_count, last_order_us = excluded.last_order_us, doc = excluded.doc",
        ))
        .chain(multi_insert(backend, "INSERT INTO profile_tags (org_id, tag, profile_id)", &tag_rows, "ON CONFLICT DO NOTHING"))
        .chain(delete_in(backend, &org, "profile_merges", "cluster_id", &merge_clusters))
        .chain(multi_insert(
            backend,
            "INSERT INTO profile_merges (org_id, from_profile, into_profile, cluster_id, message_id, identities, at_us)",
            &merge_rows,
            "ON CONFLICT (org_id, from_profile) DO UPDATE SET into_profile = excluded.into_profile, cluster_id = excluded.cluster_id",
        ))
        .chain(delete_in(backend, &org, "orders", "order_key", &stale_orders))
        .chain(multi_insert(
            backend,
            "INSERT INTO orders (org_id, order_key, store, order_id, profile_id, cluster_id, status, currency, total, created_at_us, doc, \
             purchased, purchased_at_us, net_total_e4)",
            &order_rows,
            "ON CONFLICT (org_id, order_key) DO UPDATE SET profile_id = excluded.profile_id, cluster_id = excluded.cluster_id, \
             status = excluded.status, currency = excluded.currency, total = excluded.total, \
             created_at_us = excluded.created_at_us, doc = excluded.doc, purchased = excluded.purchased, \
             purchased_at_us = excluded.purchased_at_us, net_total_e4 = excluded.net_total_e4",
        ))
        .chain(delete_in(backend, &org, "order_lines", "order_key", &stale_orders))
        .chain(delete_in(backend, &org, "order_lines", "order_key", &rewritten_orders))
        .chain(multi_insert(
            backend,
            "INSERT INTO order_lines (org_id, order_key, line_no, profile_id, product_id, sku, category, purchased_at_us)",
            &line_rows,
            "ON CONFLICT (org_id, order_key, line_no) DO UPDATE SET profile_id = excluded.profile_id, product_id = excluded.product_id, \
             sku = excluded.sku, category = excluded.category, purchased_at_us = excluded.purchased_at_us",
        ));
        for st in statements {
            st.query().execute(&mut **tx).await?;
        }
        crate::segments::mark_dirty(tx, backend, &org, &dirty_marks).await?;

        // Products: the latest version wins, whatever the arrival order.
        let rows: Vec<Vec<Bind>> = self
            .products
            .iter()
            .map(|(p, deleted, version)| {
                vec![
                    text(&org),
                    text(&p.store),
                    text(&p.product_id),
                    Bind::OptText(p.sku.clone()),
                    text(&p.name),
                    Bind::OptText(p.price.as_ref().map(|m| m.amount.to_string())),
                    Bind::OptText(p.price.as_ref().map(|m| m.currency.clone())),
                    Bind::OptText(p.stock_status.clone()),
                    Bind::Int(i64::from(*deleted)),
                    text(version),
                    Bind::Text(serde_json::to_string(p).unwrap_or_default()),
                ]
            })
            .collect();
        for st in multi_insert(
            backend,
            "INSERT INTO products (org_id, store, product_id, sku, name, price, currency, stock_status, deleted, version, doc)",
            &rows,
            "ON CONFLICT (org_id, store, product_id) DO UPDATE SET sku = excluded.sku, name = excluded.name, \
             price = excluded.price, currency = excluded.currency, stock_status = excluded.stock_status, \
             deleted = excluded.deleted, version = excluded.version, doc = excluded.doc \
             WHERE products.version < excluded.version",
        ) {
            st.query().execute(&mut **tx).await?;
        }

        insert_derived(tx, backend, &org, self.derived.into_values().collect(), now).await
    }
}

/// An amount in ten-thousandths of its unit (`orders.net_total_e4`),
/// rounded half to even past the fourth decimal; saturates far beyond any
/// order's total.
fn ten_thousandths(amount: rust_decimal::Decimal) -> i64 {
    use rust_decimal::prelude::ToPrimitive;
    amount
        .checked_mul(rust_decimal::Decimal::from(10_000))
        .map(|d| d.round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointNearestEven))
        .and_then(|d| d.to_i64())
        .unwrap_or(if amount.is_sign_negative() {
            i64::MIN
        } else {
            i64::MAX
        })
}

/// `DELETE FROM table WHERE org_id = … AND column IN (…)`, in chunks.
fn delete_in(
    backend: Backend,
    org: &str,
    table: &str,
    column: &str,
    values: &[String],
) -> Vec<Statement> {
    values
        .chunks(200)
        .map(|chunk| {
            let mut st =
                Statement::for_backend(backend, format!("DELETE FROM {table} WHERE org_id = "));
            let m = st.bind(Bind::Text(org.to_owned()));
            st.push(&format!("{m} AND {column} IN "));
            let list = st.in_list(chunk.iter().map(String::as_str));
            st.push(&list);
            st
        })
        .collect()
}

/// Appends derived order events to the log; ones already there are skipped.
async fn insert_derived(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    org: &str,
    derived: Vec<DerivedEvent>,
    now: i64,
) -> Result<(), StoreError> {
    if derived.is_empty() {
        return Ok(());
    }
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
            .bind(PG_APPEND_LOCK)
            .execute(&mut **tx)
            .await?;
    }
    let received = cohort_domain::time::format_rfc3339(cohort_domain::time::from_micros(now));
    let rows: Vec<Vec<Bind>> = derived
        .into_iter()
        .map(|d| {
            let mut message = d.message;
            message.insert(
                "receivedAt".into(),
                serde_json::Value::String(received.clone()),
            );
            vec![
                Bind::Text(org.to_owned()),
                Bind::Text(d.source_id),
                Bind::Text(d.message_id),
                Bind::Text("track".into()),
                Bind::Text(d.event),
                Bind::OptText(d.email),
                Bind::Int(d.timestamp_us),
                Bind::Int(now),
                Bind::Text(serde_json::to_string(&message).unwrap_or_default()),
            ]
        })
        .collect();
    for st in multi_insert(
            backend,
        "INSERT INTO events (org_id, source_id, message_id, type, event, email, timestamp_us, received_at_us, payload)",
        &rows,
        "ON CONFLICT (org_id, message_id) DO NOTHING",
    ) {
        st.query().execute(&mut **tx).await?;
    }
    Ok(())
}

/// SHA-256 of an erased identity, as kept after erasure.
pub(crate) fn erased_identity_digest(org: &str, identity: &Identity) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{org}\0{}", identity.key()).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The erased-identity digests matching identities of profiles this batch
/// creates (usually none: the table is consulted only for new profiles).
async fn new_profile_erasure_digests(
    tx: &mut Transaction<'_, Any>,
    org: &str,
    clusters: &HashMap<String, ClusterWork>,
) -> Result<BTreeSet<String>, StoreError> {
    let digests: Vec<String> = clusters
        .values()
        .flat_map(|w| {
            w.state
                .profiles
                .iter()
                .filter(|(id, _)| !w.loaded_profiles.contains(*id))
                .flat_map(|(_, p)| p.identities.iter().map(|i| erased_identity_digest(org, i)))
        })
        .collect();
    let mut found = BTreeSet::new();
    for chunk in digests.chunks(500) {
        let mut st =
            Statement::new("SELECT digest FROM erased_identities WHERE org_id = $1 AND digest IN ");
        st.bind(Bind::Text(org.to_owned()));
        let list = st.in_list(chunk.iter().map(String::as_str));
        st.push(&list);
        for row in st.query().fetch_all(&mut **tx).await? {
            found.insert(row.col::<String, _>(0)?);
        }
    }
    Ok(found)
}
