//! The overview: events per hour for the last 7 days, sources, stores
//! with their health, destinations with their failures.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use cohort_domain::connect::{Health, InstallationStatus};
use cohort_store::now_micros;
use serde::Serialize;

use crate::WebState;
use crate::{chart, html, templates, Member, UiResult};

const HOUR: i64 = 3600 * 1_000_000;
/// Profiles counted on a page at most; more read as "10,000+".
pub(crate) const PROFILE_COUNT_CAP: u32 = 10_000;

#[derive(Serialize)]
struct SourceRow {
    id: String,
    name: String,
    enabled: bool,
    events_24h: i64,
}

#[derive(Serialize)]
struct StoreRow {
    id: String,
    name: String,
    url: String,
    status: String,
    health: Option<&'static str>,
    last_heartbeat_at: Option<i64>,
}

/// The organisation's overview.
pub(crate) async fn overview(State(state): State<WebState>, member: Member) -> UiResult {
    let db = state.db();
    let org = &member.org.id;
    let now = now_micros();
    let start = now - now.rem_euclid(HOUR) - 167 * HOUR;
    db.refresh_event_counts().await?;
    let hourly = db.events_per_hour(org, start).await?;
    let week: i64 = hourly.iter().map(|(_, n)| n).sum();
    let day: i64 = hourly
        .iter()
        .filter(|(at, _)| *at > now - 24 * HOUR)
        .map(|(_, n)| n)
        .sum();
    let per_source: HashMap<String, i64> = db
        .events_per_source(org, now - 23 * HOUR)
        .await?
        .into_iter()
        .collect();
    let sources: Vec<SourceRow> = db
        .list_sources(org)
        .await?
        .into_iter()
        .map(|s| SourceRow {
            events_24h: per_source.get(s.id.as_str()).copied().unwrap_or(0),
            id: s.id.as_str().to_owned(),
            name: s.name,
            enabled: s.enabled,
        })
        .collect();
    let stores: Vec<StoreRow> = db
        .list_installations(org)
        .await?
        .into_iter()
        .filter(|s| s.installation.status != InstallationStatus::Replaced)
        .map(|s| {
            let i = s.installation;
            StoreRow {
                health: (i.status == InstallationStatus::Connected)
                    .then(|| Health::at(i.last_heartbeat_at, now).as_str()),
                name: if i.site_name.is_empty() {
                    i.store_url.clone()
                } else {
                    i.site_name
                },
                id: i.id,
                url: i.store_url,
                status: i.status.as_str().to_owned(),
                last_heartbeat_at: i.last_heartbeat_at,
            }
        })
        .collect();
    let destinations = db.destination_health(org, now).await?;
    let profiles = db.count_profiles_upto(org, PROFILE_COUNT_CAP).await?;
    let body = templates::render(
        "overview.html",
        &member.layout("overview", "Overview"),
        minijinja::context! {
            chart => chart::hourly_bars(start, 168, &hourly),
            events_week => week,
            events_day => day,
            profiles => profiles,
            profiles_capped => profiles >= i64::from(PROFILE_COUNT_CAP),
            sources => sources,
            connected_stores => stores.iter().filter(|s| s.status == "connected").count(),
            stores => stores,
            destinations => destinations,
        },
    )?;
    Ok(html(StatusCode::OK, body))
}
