//! `cohort bench ui`: how long the admin UI's pages take to render with a
//! realistic history (default 1,000,000 events about 100,000 people over
//! the last 7 days, projected), against the same server's `/healthz` as the
//! floor of a request. The server is the real router on a local port; each
//! page is requested one at a time, so the time is the page's own work
//! (storage reads and template) plus a loopback round trip.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use cohort_api::{ApiSettings, AppState};
use cohort_domain::profile::Identity;
use cohort_store::projection::Projector;
use cohort_store::users::{hash_password, Role};
use cohort_store::writer::{EventWriter, WriterOptions};
use cohort_store::{Db, DbOptions};

use crate::bench_project::{fill_log, tempfile_dir};

#[derive(Args, Clone)]
pub struct UiArgs {
    /// Database to fill (default: a fresh SQLite file in a temporary folder).
    /// Use an empty PostgreSQL database: the benchmark appends to it.
    #[arg(long)]
    database_url: Option<String>,
    /// Events in the log, spread over the last 7 days
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// People they are about
    #[arg(long, default_value_t = 100_000)]
    profiles: u64,
    /// Requests per page
    #[arg(long, default_value_t = 100)]
    requests: usize,
}

struct Timing {
    p50: Duration,
    p95: Duration,
    max: Duration,
}

async fn time(client: &reqwest::Client, url: &str, cookie: &str, n: usize) -> anyhow::Result<Timing> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let response = client.get(url).header("cookie", cookie).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        samples.push(started.elapsed());
        anyhow::ensure!(status.is_success(), "{url} answered {status}: {}", String::from_utf8_lossy(&body));
    }
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    Ok(Timing { p50: at(0.5), p95: at(0.95), max: samples[samples.len() - 1] })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn ui(args: UiArgs) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let url = args.database_url.clone().unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.0.display()));
    let db = Db::connect(&url, &DbOptions::default()).await.context("cannot open the database")?;
    db.migrate().await?;
    let org = db.create_organisation(&format!("Bench {}", cohort_domain::ids::random_token(6))).await?;
    let source = db.create_source(&org.id, "Website").await?;
    println!("cohort bench ui: {} events across {} profiles over 7 days on {}", args.events, args.profiles, db.backend().as_str());

    let started = Instant::now();
    let span_us = 7 * 86_400_000_000i64 - 3_600_000_000;
    let base_us = cohort_store::now_micros() - span_us;
    let step_us = (span_us / args.events.max(1) as i64).max(1);
    let written = fill_log(&db, &org.id, &source.id, args.events, args.profiles, base_us, step_us).await?;
    println!("  log written: {written} events in {:.1} s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    Projector::new(db.clone()).catch_up().await?;
    println!("  projected: {} profiles in {:.1} s", db.count_profiles(&org.id).await?, started.elapsed().as_secs_f64());

    // A signed-in owner and the real router on a local port.
    let hash = tokio::task::spawn_blocking(|| hash_password("bench password, long enough")).await??;
    let user = db.create_user(&org.id, "owner@bench.example", &hash, Role::Owner).await?;
    let session = db.create_session(&user.id, 3_600_000_000).await?;
    let cookie = format!("cohort_session={}", session.reveal());
    db.create_api_token(&org.id, "bench").await?;
    let (writer, _writer_tasks) = EventWriter::start(db.clone(), WriterOptions::default());
    let app = cohort_api::router(AppState::new(db.clone(), writer, ApiSettings::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;

    // The first overview folds the week into the hourly counts (200,000
    // events a view); that one-time catch-up is reported apart.
    let org_base = format!("{base}/app/o/{}", org.id.as_str());
    let started = Instant::now();
    for _ in 0..(args.events / 200_000 + 2) {
        time(&client, &org_base, &cookie, 1).await?;
    }
    println!("  hourly counts caught up with the log in {:.1} s (once, on the first overviews)", started.elapsed().as_secs_f64());

    let person = 3;
    let profile = db
        .profile_id_of(&org.id, &Identity::user(&format!("user-{person}")))
        .await?
        .context("the benchmark's person 3 has no profile")?;
    let pages = [
        ("/healthz (baseline)", format!("{base}/healthz")),
        ("overview", org_base.clone()),
        ("sources", format!("{org_base}/sources")),
        ("source + debugger", format!("{org_base}/sources/{}", source.id.as_str())),
        ("profiles (list)", format!("{org_base}/profiles")),
        ("profiles (search email)", format!("{org_base}/profiles?q=person{person}%40example.com")),
        ("profile", format!("{org_base}/profiles/{profile}")),
        ("orders", format!("{org_base}/orders")),
        ("products", format!("{org_base}/products")),
        ("stores", format!("{org_base}/stores")),
        ("team", format!("{org_base}/members")),
        ("API tokens", format!("{org_base}/tokens")),
        ("account", format!("{base}/app/account")),
    ];
    println!("\n| page | p50 ms | p95 ms | max ms | p95 / baseline p95 |\n|---|---:|---:|---:|---:|");
    let mut floor = None;
    for (name, url) in &pages {
        time(&client, url, &cookie, 3).await?;
        let t = time(&client, url, &cookie, args.requests).await?;
        let baseline = *floor.get_or_insert(t.p95);
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            ms(t.p50),
            ms(t.p95),
            ms(t.max),
            t.p95.as_secs_f64() / baseline.as_secs_f64().max(1e-9)
        );
    }
    server.abort();
    db.close().await;
    Ok(())
}
