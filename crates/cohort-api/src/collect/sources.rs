//! Write key → source, with a short-lived cache: every collect request
//! needs it, and the answer changes rarely. A disabled or new key takes
//! effect within the cache's lifetime on every node.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use base64::Engine;
use cohort_domain::ids::{OrgId, SourceId};
use cohort_store::{Db, StoreError};

const KNOWN_TTL: Duration = Duration::from_secs(10);
const UNKNOWN_TTL: Duration = Duration::from_secs(2);
const MAX_ENTRIES: usize = 10_000;

/// The organisation and source a valid write key stands for.
#[derive(Debug, Clone)]
pub struct SourceAuth {
    pub org_id: OrgId,
    pub source_id: SourceId,
}

pub struct SourceCache {
    db: Db,
    entries: RwLock<HashMap<String, (Option<SourceAuth>, Instant)>>,
}

impl SourceCache {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The enabled source of `write_key`, or `None` for an unknown or
    /// disabled key.
    pub async fn lookup(&self, write_key: &str) -> Result<Option<SourceAuth>, StoreError> {
        if let Ok(entries) = self.entries.read() {
            if let Some((auth, fetched)) = entries.get(write_key) {
                let ttl = if auth.is_some() {
                    KNOWN_TTL
                } else {
                    UNKNOWN_TTL
                };
                if fetched.elapsed() < ttl {
                    return Ok(auth.clone());
                }
            }
        }
        let auth = self
            .db
            .find_source_by_write_key(write_key)
            .await?
            .filter(|s| s.enabled)
            .map(|s| SourceAuth {
                org_id: s.org_id,
                source_id: s.id,
            });
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(write_key.to_owned(), (auth.clone(), Instant::now()));
        }
        Ok(auth)
    }
}

/// The write key of `Authorization: Basic base64(writeKey + ":")`, tolerating
/// a value encoded without the colon.
pub fn write_key_from_header(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let key = text.split_once(':').map_or(text.as_str(), |(k, _)| k);
    (!key.is_empty()).then(|| key.to_owned())
}
