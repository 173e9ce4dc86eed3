//! Organisations and their sources (write keys).

use cohort_domain::ids::{random_token, OrgId, SourceId};

use crate::row::{map_rows, RowExt};
use crate::{now_micros, Db, StoreError};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Organisation {
    pub id: OrgId,
    pub name: String,
    pub created_at: i64,
}

/// A source with its write key. The write key is not a secret in the way a
/// token is: it ships in every browser snippet, and the admin shows it so
/// the snippet can be copied, so it is stored as is.
#[derive(Clone, serde::Serialize)]
pub struct Source {
    pub id: SourceId,
    pub org_id: OrgId,
    pub name: String,
    pub write_key: String,
    pub enabled: bool,
    pub created_at: i64,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

pub(crate) fn new_write_key() -> String {
    format!("wk_{}", random_token(32))
}

impl Db {
    pub async fn create_organisation(&self, name: &str) -> Result<Organisation, StoreError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid(
                "organisation name must not be empty".into(),
            ));
        }
        let org = Organisation {
            id: OrgId::generate(),
            name: name.to_owned(),
            created_at: now_micros(),
        };
        sqlx::query("INSERT INTO organisations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(org.id.as_str())
            .bind(&org.name)
            .bind(org.created_at)
            .execute(self.pool())
            .await?;
        Ok(org)
    }

    pub async fn list_organisations(&self) -> Result<Vec<Organisation>, StoreError> {
        let rows =
            sqlx::query("SELECT id, name, created_at FROM organisations ORDER BY created_at, id")
                .fetch_all(self.pool())
                .await?;
        map_rows(&rows, organisation_from_row)
    }

    /// Finds an organisation by its id or, failing that, its exact name.
    pub async fn find_organisation(&self, id_or_name: &str) -> Result<Organisation, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, created_at FROM organisations WHERE id = $1 OR name = $1 \
             ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END, created_at LIMIT 1",
        )
        .bind(id_or_name)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("organisation {id_or_name:?}")))?;
        organisation_from_row(&row)
    }

    pub async fn create_source(&self, org: &OrgId, name: &str) -> Result<Source, StoreError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid("source name must not be empty".into()));
        }
        let source = Source {
            id: SourceId::generate(),
            org_id: org.clone(),
            name: name.to_owned(),
            write_key: new_write_key(),
            enabled: true,
            created_at: now_micros(),
        };
        sqlx::query(
            "INSERT INTO sources (id, org_id, name, write_key, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(source.id.as_str())
        .bind(org.as_str())
        .bind(&source.name)
        .bind(&source.write_key)
        .bind(source.created_at)
        .execute(self.pool())
        .await?;
        Ok(source)
    }

    pub async fn list_sources(&self, org: &OrgId) -> Result<Vec<Source>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, org_id, name, write_key, disabled_at, created_at FROM sources \
             WHERE org_id = $1 ORDER BY created_at, id",
        )
        .bind(org.as_str())
        .fetch_all(self.pool())
        .await?;
        map_rows(&rows, source_from_row)
    }

    /// The source a write key belongs to, enabled or not.
    pub async fn find_source_by_write_key(
        &self,
        write_key: &str,
    ) -> Result<Option<Source>, StoreError> {
        let row = sqlx::query(
            "SELECT id, org_id, name, write_key, disabled_at, created_at FROM sources WHERE write_key = $1",
        )
        .bind(write_key)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(source_from_row).transpose()
    }

    /// Enables or disables a source of `org`; a disabled write key gets 401.
    pub async fn set_source_enabled(
        &self,
        org: &OrgId,
        source: &str,
        enabled: bool,
    ) -> Result<(), StoreError> {
        let disabled_at = (!enabled).then(now_micros);
        let done = sqlx::query("UPDATE sources SET disabled_at = $1 WHERE org_id = $2 AND id = $3")
            .bind(disabled_at)
            .bind(org.as_str())
            .bind(source)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("source {source:?}")));
        }
        Ok(())
    }
}

/// A row of `id, name, created_at` of `organisations`.
pub(crate) fn organisation_from_row(r: &sqlx::any::AnyRow) -> Result<Organisation, StoreError> {
    Ok(Organisation {
        id: OrgId::from_stored(r.col::<String, _>("id")?),
        name: r.col("name")?,
        created_at: r.col("created_at")?,
    })
}

pub(crate) fn source_from_row(r: &sqlx::any::AnyRow) -> Result<Source, StoreError> {
    Ok(Source {
        id: SourceId::from_stored(r.col::<String, _>("id")?),
        org_id: OrgId::from_stored(r.col::<String, _>("org_id")?),
        name: r.col("name")?,
        write_key: r.col("write_key")?,
        enabled: r.col::<Option<i64>, _>("disabled_at")?.is_none(),
        created_at: r.col("created_at")?,
    })
}
