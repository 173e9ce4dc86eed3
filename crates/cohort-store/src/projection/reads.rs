//! Reads of the projections: profiles by id or identity, lists with
//! filters and seek pagination, a profile's timeline, orders, products.

use cohort_domain::ids::OrgId;
use cohort_domain::profile::{Identity, OrderView, ProfileView};

use crate::events::StoredEvent;
use crate::row::{map_rows, RowExt};
use crate::sql::{Bind, Statement};
use crate::{Db, StoreError};

/// A profile as stored, with what the projection knows beside the view.
#[derive(Debug, Clone)]
pub struct ProfileRecord {
    pub profile: ProfileView,
    /// One of its identities belonged to an erased profile.
    pub previously_erased: bool,
    /// Set when the id asked for was merged into this profile.
    pub merged_from: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ProfileFilter {
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub tag: Option<String>,
    pub min_orders: Option<i64>,
    pub seen_since_us: Option<i64>,
    /// Seek: profiles with an id after this one.
    pub after: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub profile_id: Option<String>,
    pub status: Option<String>,
    pub store: Option<String>,
    /// Seek: orders before this (created µs, order key), newest first.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct ProductFilter {
    pub store: Option<String>,
    pub include_deleted: bool,
    /// Seek: products after this (store, product id).
    pub after: Option<(String, String)>,
    pub limit: u32,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ProductRecord {
    #[serde(flatten)]
    pub product: cohort_domain::commerce::Product,
    pub deleted: bool,
}

fn parse_doc<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::decode("doc", e))
}

impl Db {
    /// The profile an identity belongs to, if any.
    pub async fn profile_id_of(
        &self,
        org: &OrgId,
        identity: &Identity,
    ) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT profile_id FROM identities WHERE org_id = $1 AND identity = $2")
                .bind(org.as_str())
                .bind(identity.key())
                .fetch_optional(self.pool())
                .await?;
        Ok(match row {
            Some(r) => r.col(0)?,
            None => None,
        })
    }

    /// A profile by id; an id merged away leads to the profile it joined.
    pub async fn profile(
        &self,
        org: &OrgId,
        id: &str,
    ) -> Result<Option<ProfileRecord>, StoreError> {
        let mut current = id.to_owned();
        for _ in 0..16 {
            let row = sqlx::query(
                "SELECT doc, previously_erased FROM profiles WHERE org_id = $1 AND profile_id = $2",
            )
            .bind(org.as_str())
            .bind(&current)
            .fetch_optional(self.pool())
            .await?;
            if let Some(row) = row {
                return Ok(Some(ProfileRecord {
                    profile: parse_doc(&row.col::<String, _>(0)?)?,
                    previously_erased: row.col::<i64, _>(1)? != 0,
                    merged_from: (current != id).then(|| id.to_owned()),
                }));
            }
            let merged = sqlx::query(
                "SELECT into_profile FROM profile_merges WHERE org_id = $1 AND from_profile = $2",
            )
            .bind(org.as_str())
            .bind(&current)
            .fetch_optional(self.pool())
            .await?;
            match merged {
                Some(row) => current = row.col(0)?,
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    pub async fn list_profiles(
        &self,
        org: &OrgId,
        filter: &ProfileFilter,
    ) -> Result<Vec<ProfileRecord>, StoreError> {
        let mut st =
            Statement::new("SELECT p.doc, p.previously_erased FROM profiles p WHERE p.org_id = ");
        let m = st.bind(Bind::Text(org.as_str().to_owned()));
        st.push(&m);
        if let Some(email) = &filter.email {
            let m = st.bind(Bind::Text(email.trim().to_lowercase()));
            st.push(&format!(" AND p.email = {m}"));
        }
        if let Some(user) = &filter.user_id {
            let m = st.bind(Bind::Text(user.clone()));
            st.push(&format!(" AND p.user_id = {m}"));
        }
        if let Some(tag) = &filter.tag {
            let m = st.bind(Bind::Text(tag.clone()));
            st.push(&format!(
                " AND EXISTS (SELECT 1 FROM profile_tags t WHERE t.org_id = p.org_id AND t.profile_id = p.profile_id AND t.tag = {m})"
            ));
        }
        if let Some(n) = filter.min_orders {
            let m = st.bind(Bind::Int(n));
            st.push(&format!(" AND p.order_count >= {m}"));
        }
        if let Some(since) = filter.seen_since_us {
            let m = st.bind(Bind::Int(since));
            st.push(&format!(" AND p.last_seen_us >= {m}"));
        }
        if let Some(after) = &filter.after {
            let m = st.bind(Bind::Text(after.clone()));
            st.push(&format!(" AND p.profile_id > {m}"));
        }
        st.push(&format!(
            " ORDER BY p.profile_id LIMIT {}",
            filter.limit.clamp(1, 1000)
        ));
        st.query()
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok(ProfileRecord {
                    profile: parse_doc(&r.col::<String, _>(0)?)?,
                    previously_erased: r.col::<i64, _>(1)? != 0,
                    merged_from: None,
                })
            })
            .collect()
    }

    /// A profile's events, newest first by `timestamp`; `before` is the
    /// (timestamp µs, seq) of the last event of the previous page.
    pub async fn profile_timeline(
        &self,
        org: &OrgId,
        profile_id: &str,
        before: Option<(i64, i64)>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut st = Statement::new(
            "SELECT e.seq, e.source_id, e.message_id, e.type, e.event, e.user_id, e.anonymous_id, e.email, \
             e.timestamp_us, e.received_at_us, e.payload, e.notes FROM cluster_events ce \
             JOIN events e ON e.org_id = ce.org_id AND e.seq = ce.seq WHERE ce.org_id = ",
        );
        let m = st.bind(Bind::Text(org.as_str().to_owned()));
        st.push(&m);
        let m = st.bind(Bind::Text(profile_id.to_owned()));
        st.push(&format!(" AND ce.profile_id = {m}"));
        if let Some((ts, seq)) = before {
            let t1 = st.bind(Bind::Int(ts));
            let t2 = st.bind(Bind::Int(ts));
            let s = st.bind(Bind::Int(seq));
            st.push(&format!(
                " AND (e.timestamp_us < {t1} OR (e.timestamp_us = {t2} AND e.seq < {s}))"
            ));
        }
        st.push(&format!(
            " ORDER BY e.timestamp_us DESC, e.seq DESC LIMIT {}",
            limit.clamp(1, 1000)
        ));
        let rows = st.query().fetch_all(self.pool()).await?;
        map_rows(&rows, crate::events::stored_event)
    }

    pub async fn list_orders(
        &self,
        org: &OrgId,
        filter: &OrderFilter,
    ) -> Result<Vec<(i64, OrderView)>, StoreError> {
        let mut st = Statement::new("SELECT created_at_us, doc FROM orders WHERE org_id = ");
        let m = st.bind(Bind::Text(org.as_str().to_owned()));
        st.push(&m);
        for (column, value) in [
            ("profile_id", &filter.profile_id),
            ("status", &filter.status),
            ("store", &filter.store),
        ] {
            if let Some(v) = value {
                let m = st.bind(Bind::Text(v.clone()));
                st.push(&format!(" AND {column} = {m}"));
            }
        }
        if let Some((created, key)) = &filter.before {
            let c1 = st.bind(Bind::Int(*created));
            let c2 = st.bind(Bind::Int(*created));
            let k = st.bind(Bind::Text(key.clone()));
            st.push(&format!(
                " AND (created_at_us < {c1} OR (created_at_us = {c2} AND order_key < {k}))"
            ));
        }
        st.push(&format!(
            " ORDER BY created_at_us DESC, order_key DESC LIMIT {}",
            filter.limit.clamp(1, 1000)
        ));
        st.query()
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok((r.col::<i64, _>(0)?, parse_doc(&r.col::<String, _>(1)?)?)))
            .collect()
    }

    pub async fn order(&self, org: &OrgId, key: &str) -> Result<Option<OrderView>, StoreError> {
        let row = sqlx::query("SELECT doc FROM orders WHERE org_id = $1 AND order_key = $2")
            .bind(org.as_str())
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| parse_doc(&r.col::<String, _>(0)?)).transpose()
    }

    pub async fn list_products(
        &self,
        org: &OrgId,
        filter: &ProductFilter,
    ) -> Result<Vec<ProductRecord>, StoreError> {
        let mut st = Statement::new("SELECT doc, deleted FROM products WHERE org_id = ");
        let m = st.bind(Bind::Text(org.as_str().to_owned()));
        st.push(&m);
        if let Some(store) = &filter.store {
            let m = st.bind(Bind::Text(store.clone()));
            st.push(&format!(" AND store = {m}"));
        }
        if !filter.include_deleted {
            st.push(" AND deleted = 0");
        }
        if let Some((store, id)) = &filter.after {
            let s1 = st.bind(Bind::Text(store.clone()));
            let s2 = st.bind(Bind::Text(store.clone()));
            let p = st.bind(Bind::Text(id.clone()));
            st.push(&format!(
                " AND (store > {s1} OR (store = {s2} AND product_id > {p}))"
            ));
        }
        st.push(&format!(
            " ORDER BY store, product_id LIMIT {}",
            filter.limit.clamp(1, 1000)
        ));
        st.query()
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok(ProductRecord {
                    product: parse_doc(&r.col::<String, _>(0)?)?,
                    deleted: r.col::<i64, _>(1)? != 0,
                })
            })
            .collect()
    }

    /// How many profiles the organisation has.
    pub async fn count_profiles(&self, org: &OrgId) -> Result<i64, StoreError> {
        sqlx::query("SELECT COUNT(*) FROM profiles WHERE org_id = $1")
            .bind(org.as_str())
            .fetch_one(self.pool())
            .await?
            .col(0)
    }

    /// A page of the whole log as the projector reads it: (seq, payload)
    /// after `after_seq`, across organisations. For benchmarks and tools.
    pub async fn log_page(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT seq, payload FROM events WHERE seq > $1 ORDER BY seq LIMIT {}",
            limit.clamp(1, 10_000)
        ))
        .bind(after_seq)
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, |r| Ok((r.col(0)?, r.col(1)?)))
    }

    /// (events projected, events in the log): how far behind the projection is.
    pub async fn projection_position(&self) -> Result<(i64, i64), StoreError> {
        let cursor: i64 =
            sqlx::query("SELECT last_seq FROM projection_cursor WHERE name = 'profiles'")
                .fetch_one(self.pool())
                .await?
                .col(0)?;
        let max: Option<i64> = sqlx::query("SELECT MAX(seq) FROM events")
            .fetch_one(self.pool())
            .await?
            .col(0)?;
        Ok((cursor, max.unwrap_or(0)))
    }
}
