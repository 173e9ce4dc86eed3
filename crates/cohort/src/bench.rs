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
use cohort_domain::ids::OrgId;
use cohort_store::{Db, DbOptions};
use serde_json::json;

use crate::config::Config;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Batched ingestion (/v1/batch) against the HTTP ceiling (/v1/m)
    Ingest(IngestArgs),
    /// Projection throughput (profiles, identities, orders) against reading the log, and its lag under load
    Project(crate::bench_project::ProjectArgs),
    /// Deliveries per second to a local receiver, and ingestion with and without three active destinations
    Destinations(crate::bench_destinations::DestinationsArgs),
    /// Segment rules on a generated store (1 M profiles, 10 M events): full recompute against DuckDB, and the editor's live count
    Segments(crate::bench_segments::SegmentsArgs),
    /// Admin UI page render times with 1 M events and 100 k profiles, against /healthz
    Ui(crate::bench_ui::UiArgs),
    /// The no-plugin WooCommerce webhook receiver: signed order.updated deliveries stored, against verification only
    WoocommerceWebhooks(crate::bench_woocommerce::WebhooksArgs),
    /// Event → segment membership latency in a running server under a steady background load
    SegmentLatency(crate::bench_segment_latency::SegmentLatencyArgs),
    /// Personalised MJML messages rendered, queued and sent through the outbox to smtp-sink, against smtp-source's ceiling
    Send(crate::bench_send::SendArgs),
}

#[derive(Args, Clone)]
pub struct IngestArgs {
    /// Benchmark a running server instead of starting one
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// Write key for --url
    #[arg(long)]
    pub(crate) write_key: Option<String>,
    /// Database for the server the benchmark starts (default: a fresh SQLite
    /// file in a temporary folder). Events are written into it.
    #[arg(long)]
    pub(crate) database_url: Option<String>,
    /// Concurrent connections
    #[arg(long, default_value_t = 16)]
    pub(crate) connections: usize,
    /// Messages per batch
    #[arg(long, default_value_t = 100)]
    pub(crate) batch_size: usize,
    /// Seconds per phase
    #[arg(long, default_value_t = 10)]
    pub(crate) seconds: u64,
}

pub async fn run(_config: &Config, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest(args) => ingest(args).await,
        BenchCommand::Project(args) => crate::bench_project::project(args).await,
        BenchCommand::Destinations(args) => crate::bench_destinations::destinations(args).await,
        BenchCommand::Segments(args) => crate::bench_segments::segments(args).await,
        BenchCommand::Ui(args) => crate::bench_ui::ui(args).await,
        BenchCommand::WoocommerceWebhooks(args) => crate::bench_woocommerce::webhooks(args).await,
        BenchCommand::SegmentLatency(args) => {
            crate::bench_segment_latency::segment_latency(args).await
        }
        BenchCommand::Send(args) => crate::bench_send::send(args).await,
    }
}

pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) write_key: String,
    pub(crate) server: Option<tokio::process::Child>,
    pub(crate) db: Option<Db>,
    pub(crate) org: Option<OrgId>,
    pub(crate) backend: String,
    _dir: Option<tempfile_dir::TempDir>,
}

/// A temporary folder removed on drop (std only, to keep the binary's
/// dependencies to what it ships).
mod tempfile_dir {
    pub struct TempDir(pub std::path::PathBuf);
    impl TempDir {
        pub fn new() -> std::io::Result<Self> {
            let path = std::env::temp_dir().join(format!(
                "cohort-bench-{}",
                cohort_domain::ids::random_token(10)
            ));
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
    start_target_with(args, &[]).await
}

/// Starts the server with extra environment variables.
pub(crate) async fn start_target_with(
    args: &IngestArgs,
    env: &[(&str, String)],
) -> anyhow::Result<Target> {
    if let Some(url) = &args.url {
        let write_key = args.write_key.clone().context("--url needs --write-key")?;
        return Ok(Target {
            url: url.trim_end_matches('/').to_owned(),
            write_key,
            server: None,
            db: None,
            org: None,
            backend: "remote".into(),
            _dir: None,
        });
    }
    let dir = tempfile_dir::TempDir::new()?;
    let database_url = match &args.database_url {
        Some(url) => url.clone(),
        None => format!("sqlite://{}/bench.db", dir.0.display()),
    };
    let db = Db::connect(&database_url, &DbOptions::default()).await?;
    db.migrate().await?;
    let org = db
        .create_organisation(&format!("bench-{}", cohort_domain::ids::random_token(6)))
        .await?;
    let source = db.create_source(&org.id, "bench").await?;
    let port = StdListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let server = tokio::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .env("COHORT_DATABASE__URL", &database_url)
        .env("COHORT_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("COHORT_LOG__LEVEL", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
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
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Target {
        url,
        write_key: source.write_key,
        server: Some(server),
        backend: db.backend().as_str().into(),
        db: Some(db),
        org: Some(org.id),
        _dir: Some(dir),
    })
}

pub(crate) struct PhaseResult {
    requests: u64,
    pub(crate) events: u64,
    failures: u64,
    pub(crate) elapsed: Duration,
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
    pub(crate) fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// The body of one batch, built once per phase with fixed-width
/// placeholders, so that a request costs the client a copy and a few digit
/// writes instead of building and serialising JSON (580 µs per batch, which
/// capped the old ceiling phase): the client shares the machine's cores
/// with the server it measures. Both phases render the same template.
struct BatchTemplate {
    body: Vec<u8>,
    /// Where the request counter goes in each message's `messageId`.
    counter_at: Vec<usize>,
    /// Where the user number goes in each message's `userId`.
    user_at: Vec<usize>,
    size: usize,
}

const COUNTER_DIGITS: usize = 10;
const USER_DIGITS: usize = 4;
const USERS: usize = 5000;

impl BatchTemplate {
    fn new(write_key: &str, run: &str, size: usize) -> Self {
        let now = chrono::Utc::now().to_rfc3339();
        let counter_mark = "#".repeat(COUNTER_DIGITS);
        let user_mark = "@".repeat(USER_DIGITS);
        let batch: Vec<_> = (0..size)
            .map(|i| {
                json!({
                    "type": "track",
                    "event": "Product Viewed",
                    "userId": format!("user-{user_mark}"),
                    "messageId": format!("{run}-{counter_mark}-{i}"),
                    "timestamp": now,
                    "properties": {"product_id": format!("p{}", i % 50), "price": "19.90", "currency": "EUR", "name": "Blue T-Shirt"},
                    "context": {"library": {"name": "cohort-bench", "version": "1"}, "ip": "203.0.113.7"}
                })
            })
            .collect();
        let body = json!({"batch": batch, "sentAt": now, "writeKey": write_key})
            .to_string()
            .into_bytes();
        let find_all = |mark: &str| -> Vec<usize> {
            let mark = mark.as_bytes();
            body.windows(mark.len())
                .enumerate()
                .filter(|(_, w)| *w == mark)
                .map(|(at, _)| at)
                .collect()
        };
        let (counter_at, user_at) = (find_all(&counter_mark), find_all(&user_mark));
        Self {
            counter_at,
            user_at,
            body,
            size,
        }
    }

    /// The body of request number `counter`: unique `messageId`s, users
    /// cycling through 5,000.
    fn render(&self, counter: u64) -> Vec<u8> {
        let mut body = self.body.clone();
        write_digits(&mut body[..], &self.counter_at, counter, COUNTER_DIGITS);
        for (i, &at) in self.user_at.iter().enumerate() {
            let user = (counter as usize).wrapping_mul(self.size).wrapping_add(i) % USERS;
            write_digits(
                &mut body[at..at + USER_DIGITS],
                &[0],
                user as u64,
                USER_DIGITS,
            );
        }
        body
    }
}

/// Writes `value` zero-padded to `width` digits at each offset of `at`.
fn write_digits(body: &mut [u8], at: &[usize], mut value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    for &offset in at {
        body[offset..offset + width].copy_from_slice(&digits[..width]);
    }
}

pub(crate) async fn phase(
    target: &Target,
    path: &str,
    args: &IngestArgs,
    run: &str,
) -> anyhow::Result<PhaseResult> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let counter = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let template = Arc::new(BatchTemplate::new(&target.write_key, run, args.batch_size));
    anyhow::ensure!(
        template.counter_at.len() == args.batch_size && template.user_at.len() == args.batch_size,
        "the batch template has unexpected placeholders"
    );
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.connections.max(1) {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()?;
        let url = format!("{}{path}", target.url);
        let (write_key, template, counter, failures) = (
            target.write_key.clone(),
            template.clone(),
            counter.clone(),
            failures.clone(),
        );
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let body = template.render(n);
                let sent = Instant::now();
                let request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .basic_auth(&write_key, Some(""))
                    .body(body);
                // The answer is read to its end so that the connection is
                // reused rather than reopened.
                let ok = match request.send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
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
    Ok(PhaseResult {
        requests,
        events: requests * args.batch_size as u64,
        failures: failures.load(Ordering::Relaxed),
        elapsed,
        latencies,
    })
}

pub(crate) fn report(name: &str, r: &PhaseResult) {
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
    println!(
        "ratio ingest/ceiling: {:.1} %",
        100.0 * ingest.events_per_second() / ceiling.events_per_second().max(1.0)
    );
    if let Some(db) = &target.db {
        // Every acknowledged event must be in the log: count them back, in
        // the organisation this run created only (a reused database may
        // hold earlier runs).
        let stored = match &target.org {
            Some(org) => db.count_events(org).await?,
            None => 0,
        };
        println!("acknowledged {} events, stored {stored}", ingest.events);
        anyhow::ensure!(
            stored as u64 >= ingest.events,
            "acknowledged events are missing from the log"
        );
    }
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
