//! `cohort bench destinations`: one server (`cohort serve`, destinations
//! worker on) and a local receiver answering 200. Ingestion is measured
//! without destinations, then with three active webhook destinations that
//! receive every event (same server, same batches, same connections: the
//! ratio is the cost of forwarding); then ingestion stops and the
//! deliveries the three destinations still owe are drained, which gives
//! the worker's deliveries per second to a local receiver.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use cohort_store::destinations::{
    DeliveryStatus, DestinationSecrets, Filters, NewDestination, SecretsKey,
};
use serde_json::json;

use crate::bench::{phase, report, start_target_with, IngestArgs};

#[derive(Args, Clone)]
pub struct DestinationsArgs {
    /// Database for the server (default: a fresh SQLite file in a temporary folder)
    #[arg(long)]
    database_url: Option<String>,
    /// Concurrent ingestion connections
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Messages per batch
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Seconds per ingestion phase, and of the drain
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Active destinations in the second phase
    #[arg(long, default_value_t = 3)]
    destinations: usize,
}

pub async fn destinations(args: DestinationsArgs) -> anyhow::Result<()> {
    // The receiver: answers 200 at once and counts.
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let key = SecretsKey::generate();
    let ingest = IngestArgs {
        url: None,
        write_key: None,
        database_url: args.database_url.clone(),
        connections: args.connections,
        batch_size: args.batch_size,
        seconds: args.seconds,
    };
    let env = [
        ("COHORT_DESTINATIONS__KEY", key.to_base64()),
        (
            "COHORT_DESTINATIONS__ALLOW_PRIVATE_ADDRESSES",
            "true".to_owned(),
        ),
        ("COHORT_DESTINATIONS__POLL_INTERVAL_MS", "50".to_owned()),
    ];
    let mut target = start_target_with(&ingest, &env).await?;
    let db = target.db.clone().context("no database")?;
    let org = target.org.clone().context("no organisation")?;
    println!(
        "cohort bench destinations: {} connections, {} messages per batch, {} s per phase, {} destinations, backend {}, {} cores",
        args.connections,
        args.batch_size,
        args.seconds,
        args.destinations,
        target.backend,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let run = cohort_domain::ids::random_token(8);
    let without = phase(&target, "/v1/batch", &ingest, &format!("{run}a")).await?;
    report("ingest, no destination", &without);

    for i in 0..args.destinations {
        db.create_destination(
            &org,
            &key,
            &NewDestination {
                kind: cohort_domain::destinations::DestinationKind::Webhook,
                name: format!("bench-{i}"),
                enabled: true,
                filters: Filters::default(),
                settings: json!({ "url": receiver_url }),
                secrets: DestinationSecrets {
                    signing_secret: Some(cohort_domain::destinations::webhook::new_secret()),
                    ..Default::default()
                },
            },
        )
        .await?;
    }
    let with = phase(&target, "/v1/batch", &ingest, &format!("{run}b")).await?;
    report(
        &format!("ingest, {} destinations", args.destinations),
        &with,
    );
    println!(
        "ratio with/without destinations: {:.1} %",
        100.0 * with.events_per_second() / without.events_per_second().max(1.0)
    );
    let owed = with.events * args.destinations as u64;
    let during = received.load(Ordering::Relaxed);
    println!(
        "deliveries during the phase: {during} of {owed} owed ({:.0} deliveries/s while ingesting)",
        during as f64 / with.elapsed.as_secs_f64()
    );

    // The drain: no more ingestion; deliveries per second to the receiver.
    let start_count = received.load(Ordering::Relaxed);
    let started = Instant::now();
    let window = Duration::from_secs(args.seconds);
    while started.elapsed() < window && received.load(Ordering::Relaxed) < owed {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = received.load(Ordering::Relaxed) - start_count;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "drain: {drained} deliveries in {elapsed:.1} s = {:.0} deliveries/s to a local receiver",
        drained as f64 / elapsed
    );
    let delivered = db.count_deliveries(&org, DeliveryStatus::Delivered).await?;
    let received_total = received.load(Ordering::Relaxed);
    println!("recorded delivered {delivered}, receiver got {received_total} requests");

    if let Some(mut server) = target.server.take() {
        if let Some(pid) = server.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), server.wait()).await;
    }
    Ok(())
}
