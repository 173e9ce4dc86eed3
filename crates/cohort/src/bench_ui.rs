//! `cohort bench ui`: how long the admin UI's pages take to render with a
//! realistic history (default 1,000,000 events about 100,000 people over
//! the last 7 days, projected; an Everflow destination with a delivery for
//! every order, a third of them failed; a connected store with a sync run),
//! against the same server's `/healthz` as the
//! floor of a request. The server is the real router on a local port; each
//! page is requested one at a time, so the time is the page's own work
//! (storage reads and template) plus a loopback round trip.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use cohort_api::{ApiSettings, AppState};
use cohort_domain::accounts::hash_password;
use cohort_domain::profile::Identity;
use cohort_store::projection::Projector;
use cohort_store::users::Role;
use cohort_store::writer::{EventWriter, WriterOptions};
use cohort_store::{Db, DbOptions};
use cohort_web::{WebSettings, WebState};

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

async fn time(
    client: &reqwest::Client,
    url: &str,
    cookie: &str,
    n: usize,
) -> anyhow::Result<Timing> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let response = client.get(url).header("cookie", cookie).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        samples.push(started.elapsed());
        anyhow::ensure!(
            status.is_success(),
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    Ok(Timing {
        p50: at(0.5),
        p95: at(0.95),
        max: samples[samples.len() - 1],
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn ui(args: UiArgs) -> anyhow::Result<()> {
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
    let source = db.create_source(&org.id, "Website").await?;
    // Created before the log is written, so it reads all of it.
    let key = cohort_store::destinations::SecretsKey::generate();
    let destination = bench_destination(&db, &org.id, &key).await?;
    println!(
        "cohort bench ui: {} events across {} profiles over 7 days on {}",
        args.events,
        args.profiles,
        db.backend().as_str()
    );

    let started = Instant::now();
    let span_us = 7 * 86_400_000_000i64 - 3_600_000_000;
    let base_us = cohort_store::now_micros() - span_us;
    let step_us = (span_us / args.events.max(1) as i64).max(1);
    let written = fill_log(
        &db,
        &org.id,
        &source.id,
        args.events,
        args.profiles,
        base_us,
        step_us,
    )
    .await?;
    println!(
        "  log written: {written} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    Projector::new(db.clone()).catch_up().await?;
    println!(
        "  projected: {} profiles in {:.1} s",
        db.count_profiles(&org.id).await?,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let deliveries = db.enqueue_from_log().await?;
    // A delivery log as a week of sending leaves it: two thirds delivered, a third failed.
    settle_deliveries(&db, &org.id, &destination).await?;
    println!(
        "  {deliveries} deliveries recorded in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // A signed-in owner and the real router on a local port.
    let hash =
        tokio::task::spawn_blocking(|| hash_password("bench password, long enough")).await??;
    let user = db
        .create_user(&org.id, "owner@bench.example", &hash, Role::Owner)
        .await?;
    let session = db.create_session(&user.id, 3_600_000_000).await?;
    let cookie = format!("cohort_session={}", session.reveal());
    let store = bench_store(&db, &org.id, &user.id).await?;
    db.create_api_token(&org.id, "bench").await?;
    let (writer, _writer_tasks) = EventWriter::start(db.clone(), WriterOptions::default());
    // The dispatcher only lends its key and policy to the pages: nothing is sent.
    let dispatcher =
        cohort_engine::destinations::Dispatcher::new(db.clone(), key, Default::default())?;
    let pages = cohort_web::router(WebState::new(
        db.clone(),
        WebSettings::default(),
        Some(dispatcher.clone()),
    ));
    let app = cohort_api::router_with_pages(
        AppState::new(db.clone(), writer, ApiSettings::default()).with_destinations(dispatcher),
        pages,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    // The first overview folds the week into the hourly counts (200,000
    // events a view); that one-time catch-up is reported apart.
    let org_base = format!("{base}/app/o/{}", org.id.as_str());
    let started = Instant::now();
    for _ in 0..(args.events / 200_000 + 2) {
        time(&client, &org_base, &cookie, 1).await?;
    }
    println!(
        "  hourly counts caught up with the log in {:.1} s (once, on the first overviews)",
        started.elapsed().as_secs_f64()
    );

    let person = 3;
    let profile = db
        .profile_id_of(&org.id, &Identity::user(&format!("user-{person}")))
        .await?
        .context("the benchmark's person 3 has no profile")?;
    let pages = [
        ("/healthz (baseline)", format!("{base}/healthz")),
        ("overview", org_base.clone()),
        ("sources", format!("{org_base}/sources")),
        (
            "source + debugger",
            format!("{org_base}/sources/{}", source.id.as_str()),
        ),
        ("profiles (list)", format!("{org_base}/profiles")),
        (
            "profiles (search email)",
            format!("{org_base}/profiles?q=person{person}%40example.com"),
        ),
        ("profile", format!("{org_base}/profiles/{profile}")),
        ("orders", format!("{org_base}/orders")),
        ("products", format!("{org_base}/products")),
        ("stores", format!("{org_base}/stores")),
        ("store + sync runs", format!("{org_base}/stores/{store}")),
        (
            "store sync runs (live fragment)",
            format!("{org_base}/stores/{store}/runs"),
        ),
        ("destinations", format!("{org_base}/destinations")),
        (
            "destination (Everflow, field mapping)",
            format!("{org_base}/destinations/{destination}"),
        ),
        (
            "delivery log",
            format!("{org_base}/destinations/{destination}/deliveries"),
        ),
        (
            "delivery log (failed, text)",
            format!("{org_base}/destinations/{destination}/deliveries?status=failed&q=o-3-"),
        ),
        (
            "delivery",
            format!("{org_base}/destinations/{destination}/deliveries/bench-3-8"),
        ),
        (
            "new Everflow destination",
            format!("{org_base}/destinations/new?type=everflow"),
        ),
        ("team", format!("{org_base}/members")),
        ("API tokens", format!("{org_base}/tokens")),
        ("account", format!("{base}/app/account")),
    ];
    println!(
        "\n| page | p50 ms | p95 ms | max ms | p95 / baseline p95 |\n|---|---:|---:|---:|---:|"
    );
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

/// An Everflow destination that sends every order.
async fn bench_destination(
    db: &Db,
    org: &cohort_domain::ids::OrgId,
    key: &cohort_store::destinations::SecretsKey,
) -> anyhow::Result<String> {
    let input = cohort_engine::destinations::manage::Input {
        kind: "everflow".into(),
        name: Some("Everflow".into()),
        settings: serde_json::json!({"tracking_domain": "https://www.abc123trk.example", "network_id": "115",
                                     "event_mapping": {"Order Completed": 0}, "verification_token": "vt-bench-0123456789abcdef"}),
        ..Default::default()
    };
    let prepared = cohort_engine::destinations::manage::prepare(input, false)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(db.create_destination(org, key, &prepared.new).await?.id)
}

/// Records an outcome for every delivery of `destination`: a third failed
/// (HTTP 400), the rest delivered.
async fn settle_deliveries(
    db: &Db,
    org: &cohort_domain::ids::OrgId,
    destination: &str,
) -> anyhow::Result<()> {
    use cohort_store::destinations::{AttemptRecord, DeliveryFilter, DeliveryStatus};
    let mut before = None;
    // By position, not by seq: on PostgreSQL the orders' seqs can all share a remainder.
    let mut position = 0_u64;
    loop {
        let filter = DeliveryFilter {
            before_seq: before,
            limit: 1000,
            ..Default::default()
        };
        let page = db.list_deliveries(org, destination, &filter).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        before = Some(last.seq);
        let records: Vec<(String, AttemptRecord)> = page
            .iter()
            .map(|d| {
                position += 1;
                let failed = position.is_multiple_of(3);
                let record = AttemptRecord {
                    status: if failed { DeliveryStatus::Failed } else { DeliveryStatus::Delivered },
                    sent: true,
                    next_attempt_at_us: None,
                    request: Some("GET https://www.abc123trk.example/?nid=115&transaction_id=t&verification_token=***".into()),
                    response_status: Some(if failed { 400 } else { 200 }),
                    response_excerpt: Some(if failed { r#"{"error":"invalid transaction"}"# } else { r#"{"result":"ok"}"# }.into()),
                    reason: failed.then(|| "HTTP 400".into()),
                };
                (d.message_id.clone(), record)
            })
            .collect();
        for chunk in records.chunks(256) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|(m, r)| (org, destination, m.as_str(), r))
                .collect();
            db.record_attempts(&rows).await?;
        }
    }
}

/// A WooCommerce store paired and approved as the authorize page does,
/// with a finished sync run.
async fn bench_store(
    db: &Db,
    org: &cohort_domain::ids::OrgId,
    user: &cohort_domain::ids::UserId,
) -> anyhow::Result<String> {
    use cohort_store::connect::{DecisionOutcome, NewPairing};
    let (pairing, _) = db
        .create_pairing(&NewPairing {
            store_url: "https://shop.example".into(),
            site_name: "Bench Shop".into(),
            platform: cohort_domain::connect::Platform::Woocommerce,
            plugin_version: "0.1.0".into(),
            wp_version: "6.6.2".into(),
            wc_version: Some("9.3.3".into()),
            php_version: "8.2.24".into(),
            currency: Some("EUR".into()),
            timezone: "Europe/Paris".into(),
            return_url: "https://shop.example/wp-admin/".into(),
        })
        .await?;
    let DecisionOutcome::Approved {
        installation_id: id,
        ..
    } = db.approve_pairing(&pairing.id, org, user).await?
    else {
        anyhow::bail!("the bench store's pairing was not approved");
    };
    let resources: Vec<String> = ["products", "customers", "orders"]
        .map(String::from)
        .to_vec();
    let (run, _) = db.start_sync_run(org, &id, None, &resources).await?;
    for (resource, batches) in [("products", 4), ("customers", 30), ("orders", 50)] {
        for seq in 0..batches {
            db.record_sync_batch(&run.id, resource, seq, 100, 100, 0)
                .await?;
        }
    }
    db.complete_sync_run(
        org,
        &id,
        &run.id,
        r#"{"products": 400, "customers": 3000, "orders": 5000}"#,
    )
    .await?;
    Ok(id)
}
