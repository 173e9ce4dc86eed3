//! `cohort bench segment-latency`: how long an event takes to change a
//! segment's membership in a running `cohort serve`, while a steady
//! background load arrives over HTTP. The store is prefilled through the
//! real log and projection; the spec's benchmark segments are saved
//! through the segments service; then probes — a new person identified
//! with `country = "DE"`, which benchmark rule 4 selects — are timed from
//! the HTTP acknowledgement to the member row, with the projection and the
//! membership worker running as in production.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use cohort_engine::segments::{RuleSource, SegmentDraft, Segments};
use cohort_store::projection::ProfileFilter;
use serde_json::json;

use crate::bench::{start_target_with, IngestArgs};

/// The spec's benchmark rules (`shared/spec/segments.md`), with the
/// segment rule 5 names.
pub(crate) const BENCHMARK_SEGMENTS: [(&str, &str); 6] = [
    ("Repeat Customers", "orders.count >= 2"),
    (
        "Rule 1",
        r#"performed "Order Completed" = 2 times and not performed "Email Opened" within 30 days"#,
    ),
    (
        "Rule 2",
        "orders.total_spent > 200 and last_seen within 90 days",
    ),
    (
        "Rule 3",
        r#"performed "Product Viewed" >= 3 times within 7 days where properties.category = "Shoes" and not performed "Order Completed" within 7 days"#,
    ),
    (
        "Rule 4",
        r#"trait.country = "DE" or (tag "vip" and orders.count >= 3)"#,
    ),
    (
        "Rule 5",
        r#"in segment "Repeat Customers" and not opened email within 60 days"#,
    ),
];

#[derive(Args, Clone)]
pub struct SegmentLatencyArgs {
    /// Database for the server (default: a fresh SQLite file in a temporary
    /// folder). Use an empty PostgreSQL database.
    #[arg(long)]
    database_url: Option<String>,
    /// Events written into the log before measuring
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// People they are about
    #[arg(long, default_value_t = 20_000)]
    profiles: u64,
    /// Background events per second over HTTP while probing
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Probes (one new person each, 4 per second)
    #[arg(long, default_value_t = 60)]
    probes: u64,
}

pub async fn segment_latency(args: SegmentLatencyArgs) -> anyhow::Result<()> {
    let target = start_target_with(
        &IngestArgs {
            url: None,
            write_key: None,
            database_url: args.database_url.clone(),
            connections: 1,
            batch_size: 100,
            seconds: 0,
        },
        &[],
    )
    .await?;
    let db = target
        .db
        .clone()
        .context("the bench starts its own server")?;
    let org = target
        .org
        .clone()
        .context("the bench creates its organisation")?;
    let source = db
        .list_sources(&org)
        .await?
        .into_iter()
        .next()
        .context("the bench's source")?;
    println!(
        "cohort bench segment-latency: {} events across {} profiles on {}, then {} events/s over HTTP",
        args.events, args.profiles, target.backend, args.rate
    );

    let started = Instant::now();
    let base_us = cohort_store::now_micros() - 30 * 86_400_000_000;
    let step = (30 * 86_400_000_000 / args.events.max(1) as i64).max(1);
    crate::bench_project::fill_log(
        &db,
        &org,
        &source.id,
        args.events,
        args.profiles,
        base_us,
        step,
    )
    .await?;
    wait_projected(&db, Duration::from_secs(3600)).await?;
    println!(
        "  prefill written and projected by the server in {:.1} s ({} profiles)",
        started.elapsed().as_secs_f64(),
        db.count_profiles(&org).await?
    );

    let segments = Segments::new(db.clone());
    let mut probe_segment = String::new();
    for (name, rule) in BENCHMARK_SEGMENTS {
        let t = Instant::now();
        let record = segments
            .create(
                &org,
                SegmentDraft {
                    name: name.to_owned(),
                    description: None,
                    rule: RuleSource::Text(rule.to_owned()),
                },
            )
            .await
            .with_context(|| format!("saving {name}"))?;
        println!(
            "  saved {name:<16} {:>8} members in {:>7.0} ms (full compute at save)",
            record.member_count,
            t.elapsed().as_secs_f64() * 1000.0
        );
        if name == "Rule 4" {
            probe_segment = record.segment_id;
        }
    }

    // Background load: `rate` events per second in ten batches a second.
    let client = reqwest::Client::new();
    let sent = Arc::new(AtomicU64::new(0));
    let stop = tokio_util_stop();
    let load = {
        let (client, url, key, sent, stop) = (
            client.clone(),
            format!("{}/v1/batch", target.url),
            target.write_key.clone(),
            sent.clone(),
            stop.clone(),
        );
        let (profiles, per_batch) = (args.profiles.max(1), (args.rate / 10).max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let at = cohort_store::now_micros();
                let batch: Vec<serde_json::Value> = (0..per_batch)
                    .map(|i| {
                        let mut m = crate::bench_project::message((n + i) % profiles, 1000 + n, at);
                        m["messageId"] = json!(format!("load-{n}-{i}"));
                        m
                    })
                    .collect();
                n += per_batch;
                let ok = client
                    .post(&url)
                    .basic_auth(&key, Some(""))
                    .json(&json!({ "batch": batch }))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    sent.fetch_add(per_batch, Ordering::Relaxed);
                }
            }
        })
    };

    let phase = Instant::now();
    let mut probes = tokio::task::JoinSet::new();
    for k in 0..args.probes {
        let (client, url, key, db, org, segment) = (
            client.clone(),
            format!("{}/v1/batch", target.url),
            target.write_key.clone(),
            db.clone(),
            org.clone(),
            probe_segment.clone(),
        );
        probes.spawn(async move {
            let user = format!("probe-{k}-{}", cohort_domain::ids::random_token(6));
            let body = json!({"batch": [{"type": "identify", "userId": user,
                "traits": {"country": "DE"}, "messageId": format!("probe-{user}")}]});
            let response = client
                .post(&url)
                .basic_auth(&key, Some(""))
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(response.status().is_success(), "probe not accepted");
            let acked = Instant::now();
            let filter = ProfileFilter {
                user_id: Some(user.clone()),
                limit: 1,
                ..Default::default()
            };
            loop {
                if let Some(p) = db.list_profiles(&org, &filter).await?.first() {
                    let member = db
                        .profile_segments(&org, &p.profile.id)
                        .await?
                        .iter()
                        .any(|s| s.segment_id == segment);
                    if member {
                        return Ok(acked.elapsed());
                    }
                }
                anyhow::ensure!(
                    acked.elapsed() < Duration::from_secs(120),
                    "{user} never entered the segment"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut latencies = Vec::new();
    while let Some(done) = probes.join_next().await {
        latencies.push(done??);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = load.await;
    let achieved = sent.load(Ordering::Relaxed) as f64 / phase.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0
    };
    println!(
        "  event → membership ({} probes, background {achieved:.0} events/s): p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        latencies.len(),
        pct(0.5),
        pct(0.95),
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    );
    db.close().await;
    drop(target);
    Ok(())
}

/// A stop flag shared with the load task.
fn tokio_util_stop() -> Arc<std::sync::atomic::AtomicBool> {
    Arc::new(std::sync::atomic::AtomicBool::new(false))
}

/// Waits until the server's projection has read the whole log.
async fn wait_projected(db: &cohort_store::Db, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let (cursor, last) = db.projection_position().await?;
        if cursor >= last {
            return Ok(());
        }
        anyhow::ensure!(started.elapsed() < limit, "projection did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
