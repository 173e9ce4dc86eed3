//! `cohort bench ingest`: batched ingestion against the HTTP ceiling of the
//! same server. Both phases send the same batches from the same number of
//! connections; the ceiling phase posts them to `/v1/m`, which reads the
//! body and discards it, so the ratio isolates what parsing, validation
//! and the durable commit cost.

use std::net::TcpListener as StdListener;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use cohort_store::{Db, DbOptions};
use serde_json::json;

use crate::config::Config;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Batched ingestion (/v1/batch) against the HTTP ceiling (/v1/m)
    Ingest(IngestArgs),
}

#[derive(Args, Clone)]
pub struct IngestArgs {
    /// Benchmark a running server instead of starting one
    #[arg(long)]
    url: Option<String>,
    /// Write key for --url
    #[arg(long)]
    write_key: Option<String>,
    /// Database for the server the benchmark starts (default: a fresh SQLite
    /// file in a temporary folder). Events are written into it.
    #[arg(long)]
    database_url: Option<String>,
    /// Concurrent connections
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Messages per batch
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Seconds per phase
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

pub async fn run(_config: &Config, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest(args) => ingest(args).await,
    }
}

struct Target {
    url: String,
    write_key: String,
    server: Option<tokio::process::Child>,
    db: Option<Db>,
    backend: String,
    _dir: Option<tempfile_dir::TempDir>,
}

/// A temporary folder removed on drop (std only, to keep the binary's
/// dependencies to what it ships).
mod tempfile_dir {
    pub struct TempDir(pub std::path::PathBuf);
    impl TempDir {
        pub fn new() -> std::io::Result<Self> {
            let path = std::env::temp_dir().join(format!("cohort-bench-{}", cohort_domain::ids::random_token(10)));
            std::fs::create_dir_all(&path)?;
            Ok(Self(path))
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn start_target(args: &IngestArgs) -> anyhow::Result<Target> {
    if let Some(url) = &args.url {
        let write_key = args.write_key.clone().context("--url needs --write-key")?;
        return Ok(Target { url: url.trim_end_matches('/').to_owned(), write_key, server: None, db: None, backend: "remote".into(), _dir: None });
    }
    let dir = tempfile_dir::TempDir::new()?;
    let database_url = match &args.database_url {
        Some(url) => url.clone(),
        None => format!("sqlite://{}/bench.db", dir.0.display()),
    };
    let db = Db::connect(&database_url, &DbOptions::default()).await?;
    db.migrate().await?;
    let org = db.create_organisation(&format!("bench-{}", cohort_domain::ids::random_token(6))).await?;
    let source = db.create_source(&org.id, "bench").await?;
    let port = StdListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let server = tokio::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .env("COHORT_DATABASE__URL", &database_url)
        .env("COHORT_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("COHORT_LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the server")?;
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{url}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "the server did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Target { url, write_key: source.write_key, server: Some(server), backend: db.backend().as_str().into(), db: Some(db), _dir: Some(dir) })
}

struct PhaseResult {
    requests: u64,
    events: u64,
    failures: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl PhaseResult {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[index]
    }
    fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

fn batch_body(write_key: &str, run: &str, counter: u64, size: usize) -> String {
    let now = chrono::Utc::now().to_rfc3339();
    let batch: Vec<_> = (0..size)
        .map(|i| {
            json!({
                "type": "track",
                "event": "Product Viewed",
                "userId": format!("user-{}", (counter as usize * size + i) % 5000),
                "messageId": format!("{run}-{counter}-{i}"),
                "timestamp": now,
                "properties": {"product_id": format!("p{}", i % 50), "price": "19.90", "currency": "EUR", "name": "Blue T-Shirt"},
                "context": {"library": {"name": "cohort-bench", "version": "1"}, "ip": "203.0.113.7"}
            })
        })
        .collect();
    json!({"batch": batch, "sentAt": now, "writeKey": write_key}).to_string()
}

async fn phase(target: &Target, path: &str, args: &IngestArgs, run: &str) -> anyhow::Result<PhaseResult> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let counter = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.connections.max(1) {
        let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
        let url = format!("{}{path}", target.url);
        let (write_key, run, counter, failures) = (target.write_key.clone(), run.to_owned(), counter.clone(), failures.clone());
        let size = args.batch_size;
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let body = batch_body(&write_key, &run, n, size);
                let sent = Instant::now();
                let ok = match client.post(&url).header("content-type", "application/json").basic_auth(&write_key, Some("")).body(body).send().await {
                    Ok(r) => r.status().is_success(),
                    Err(_) => false,
                };
                if ok {
                    latencies.push(sent.elapsed());
                } else {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done?);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let requests = latencies.len() as u64;
    Ok(PhaseResult { requests, events: requests * args.batch_size as u64, failures: failures.load(Ordering::Relaxed), elapsed, latencies })
}

fn report(name: &str, r: &PhaseResult) {
    println!(
        "{name:<28} {:>9.0} events/s {:>7.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   failures {}",
        r.events_per_second(),
        r.requests as f64 / r.elapsed.as_secs_f64(),
        r.percentile(0.50).as_secs_f64() * 1000.0,
        r.percentile(0.99).as_secs_f64() * 1000.0,
        r.failures
    );
}

async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    let mut target = start_target(&args).await?;
    println!(
        "cohort bench ingest: {} connections, {} messages per batch, {} s per phase, backend {}, {} cores",
        args.connections,
        args.batch_size,
        args.seconds,
        target.backend,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let run = cohort_domain::ids::random_token(8);
    let ceiling = phase(&target, "/v1/m", &args, &format!("{run}c")).await?;
    report("ceiling (POST /v1/m)", &ceiling);
    let ingest = phase(&target, "/v1/batch", &args, &format!("{run}i")).await?;
    report("ingest (POST /v1/batch)", &ingest);
    println!("ratio ingest/ceiling: {:.1} %", 100.0 * ingest.events_per_second() / ceiling.events_per_second().max(1.0));
    if let Some(db) = &target.db {
        // Every acknowledged event must be in the log: count them back.
        let orgs = db.list_organisations().await?;
        let mut stored = 0;
        for org in orgs.iter().filter(|o| o.name.starts_with("bench-")) {
            stored += db.count_events(&org.id).await?;
        }
        println!("acknowledged {} events, stored {stored}", ingest.events);
        anyhow::ensure!(stored as u64 >= ingest.events, "acknowledged events are missing from the log");
    }
    if let Some(mut server) = target.server.take() {
        if let Some(pid) = server.id() {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), server.wait()).await;
    }
    Ok(())
}
