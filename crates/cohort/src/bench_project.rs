//! `cohort bench project`: projection throughput on a synthetic log, beside
//! its baseline (reading and parsing the same log, the least any projection
//! must do), then the lag from append to projection under a steady load.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use cohort_domain::ids::{OrgId, SourceId};
use cohort_store::events::NewEvent;
use cohort_store::projection::Projector;
use cohort_store::{Db, DbOptions};
use serde_json::json;

#[derive(Args, Clone)]
pub struct ProjectArgs {
    /// Database to fill (default: a fresh SQLite file in a temporary folder).
    /// Use an empty PostgreSQL database: the benchmark appends to it.
    #[arg(long)]
    database_url: Option<String>,
    /// Events in the log
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// People they are about
    #[arg(long, default_value_t = 100_000)]
    profiles: u64,
    /// Events per second appended during the lag phase (default: half the
    /// measured projection throughput)
    #[arg(long)]
    lag_rate: Option<u64>,
    /// Seconds of the lag phase
    #[arg(long, default_value_t = 10)]
    lag_seconds: u64,
}

/// The synthetic history of person `p`'s `n`-th event: a visitor who
/// browses, identifies (about one in three), adds to a cart and sometimes
/// buys. Deterministic, so runs are comparable.
pub(crate) fn message(p: u64, n: u64, at_us: i64) -> serde_json::Value {
    let anon = format!("anon-{p}");
    let time = cohort_domain::time::format_rfc3339(cohort_domain::time::from_micros(at_us));
    let known = p.is_multiple_of(3);
    let mut m = match n % 10 {
        0..=4 => {
            json!({"type": "page", "name": "Product", "properties": {"path": format!("/p/{}", n % 50)}})
        }
        5 if known => json!({"type": "identify", "userId": format!("user-{p}"),
                             "traits": {"email": format!("person{p}@example.com"), "visits": n}}),
        6 => {
            json!({"type": "track", "event": "Cart Started", "properties": {"cart_id": format!("c{p}"),
                    "products": [{"product_id": format!("{}", n % 40), "price": "12.50", "quantity": 1}]}})
        }
        7 => json!({"type": "track", "event": "Checkout Started", "properties": {"products": []}}),
        8 if known => {
            json!({"type": "track", "event": "Order Completed", "userId": format!("user-{p}"),
                             "properties": {"order_id": format!("o-{p}-{n}"), "total": "25.00", "currency": "EUR"}})
        }
        _ => {
            json!({"type": "track", "event": "Product Viewed", "properties": {"product_id": format!("{}", n % 40)}})
        }
    };
    m["anonymousId"] = json!(anon);
    m["messageId"] = json!(format!("bench-{p}-{n}"));
    m["timestamp"] = json!(time);
    m
}

fn new_event(org: &OrgId, source: &SourceId, m: serde_json::Value, at_us: i64) -> NewEvent {
    NewEvent {
        org_id: org.clone(),
        source_id: source.clone(),
        message_id: m["messageId"].as_str().unwrap_or_default().to_owned(),
        message_type: match m["type"].as_str() {
            Some("identify") => "identify",
            Some("page") => "page",
            _ => "track",
        },
        event: m["event"].as_str().map(str::to_owned),
        user_id: m["userId"].as_str().map(str::to_owned),
        anonymous_id: m["anonymousId"].as_str().map(str::to_owned),
        email: m
            .pointer("/traits/email")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        timestamp_us: at_us,
        received_at_us: at_us,
        payload: m.to_string(),
        notes: None,
    }
}

pub async fn project(args: ProjectArgs) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.0.display()));
    let db = Db::connect(&url, &DbOptions::default())
        .await
        .context("cannot open the database")?;
    db.migrate().await?;
    let org = db
        .create_organisation(&format!("Bench {}", cohort_domain::ids::random_token(6)))
        .await?;
    let source = db.create_source(&org.id, "bench").await?;
    println!(
        "cohort bench project: {} events across {} profiles on {}",
        args.events,
        args.profiles,
        db.backend().as_str()
    );

    // The log: events interleaved across people, in time order.
    let started = Instant::now();
    let base_us = cohort_store::now_micros() - 86_400_000_000;
    let per_profile = args.events.div_ceil(args.profiles.max(1));
    let written = fill_log(
        &db,
        &org.id,
        &source.id,
        args.events,
        args.profiles,
        base_us,
        1000,
    )
    .await?;
    println!(
        "  log written: {written} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Baseline: read and parse the log in the projector's page size.
    let started = Instant::now();
    let mut after = 0i64;
    let mut read = 0u64;
    loop {
        let rows = db.log_page(after, 1000).await?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        for (_, payload) in &rows {
            let parsed: serde_json::Value = serde_json::from_str(payload)?;
            std::hint::black_box(parsed);
        }
        read += rows.len() as u64;
    }
    let baseline = read as f64 / started.elapsed().as_secs_f64();
    println!("  baseline (read + parse the log):  {baseline:>9.0} events/s");

    let projector = Projector::new(db.clone());
    let started = Instant::now();
    let projected = projector.catch_up().await?;
    let seconds = started.elapsed().as_secs_f64();
    let throughput = projected as f64 / seconds;
    let profiles = db.count_profiles(&org.id).await?;
    println!(
        "  projection:                       {throughput:>9.0} events/s ({projected} events incl. derived, {seconds:.1} s, {profiles} profiles) = {:.0} % of baseline",
        100.0 * throughput / baseline
    );

    // Lag: a steady load while the projector runs as in `cohort serve`.
    let rate = args.lag_rate.unwrap_or((throughput / 2.0) as u64).max(10);
    let handle = Projector::new(db.clone()).spawn(Duration::from_millis(100));
    let mut lags: Vec<Duration> = Vec::new();
    let phase = Instant::now();
    let mut tick = 0u64;
    let mut pending: Vec<(i64, Instant)> = Vec::new();
    let per_tick = (rate / 20).max(1);
    while phase.elapsed() < Duration::from_secs(args.lag_seconds) {
        let mut events = Vec::with_capacity(per_tick as usize);
        for i in 0..per_tick {
            let n = per_profile + tick;
            let p = (tick * per_tick + i) % args.profiles.max(1);
            let at = cohort_store::now_micros();
            let mut m = message(p, n, at);
            m["messageId"] = json!(format!("lag-{tick}-{i}"));
            events.push(new_event(&org.id, &source.id, m, at));
        }
        db.append_events(&events).await?;
        let (_, last) = db.projection_position().await?;
        pending.push((last, Instant::now()));
        tick += 1;
        let (cursor, _) = db.projection_position().await?;
        pending.retain(|(seq, at)| {
            if *seq <= cursor {
                lags.push(at.elapsed());
                false
            } else {
                true
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain = Instant::now();
    while !pending.is_empty() && drain.elapsed() < Duration::from_secs(60) {
        let (cursor, _) = db.projection_position().await?;
        pending.retain(|(seq, at)| {
            if *seq <= cursor {
                lags.push(at.elapsed());
                false
            } else {
                true
            }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.abort();
    lags.sort();
    let pct = |p: f64| {
        lags.get(((lags.len() as f64 * p) as usize).min(lags.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "  lag at {rate} events/s for {} s: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (append committed → projected; {} samples, {} never projected)",
        args.lag_seconds,
        pct(0.5).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        lags.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
        lags.len(),
        pending.len()
    );
    db.close().await;
    Ok(())
}

/// Appends `events` synthetic events about `profiles` people, interleaved
/// (consecutive events are about different people), the n-th at
/// `base_us + n * step_us`. Returns how many were written.
pub(crate) async fn fill_log(
    db: &Db,
    org: &OrgId,
    source: &SourceId,
    events: u64,
    profiles: u64,
    base_us: i64,
    step_us: i64,
) -> anyhow::Result<u64> {
    let per_profile = events.div_ceil(profiles.max(1));
    let mut batch = Vec::with_capacity(5000);
    let mut written = 0u64;
    'fill: for n in 0..per_profile {
        for p in 0..profiles {
            if written == events {
                break 'fill;
            }
            let at = base_us + written as i64 * step_us;
            batch.push(new_event(org, source, message(p, n, at), at));
            written += 1;
            if batch.len() == 5000 {
                db.append_events(&batch).await?;
                batch.clear();
            }
        }
    }
    db.append_events(&batch).await?;
    Ok(written)
}

/// A temporary folder removed on drop.
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn tempfile_dir() -> std::io::Result<TempDir> {
    let path = std::env::temp_dir().join(format!(
        "cohort-bench-project-{}",
        cohort_domain::ids::random_token(10)
    ));
    std::fs::create_dir_all(&path)?;
    Ok(TempDir(path))
}
