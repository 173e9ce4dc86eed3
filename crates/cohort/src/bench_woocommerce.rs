//! `cohort bench woocommerce-webhooks`: the no-plugin webhook receiver
//! (`POST /hooks/woocommerce/{installation}`) on one server. Both phases
//! send one order per request from the same connections; the baseline's
//! deliveries carry a wrong signature, so the receiver does everything but
//! store them (find the installation, decrypt its secret, HMAC the raw body,
//! answer 401). The measured phase sends correctly signed `order.updated`
//! deliveries with distinct order ids, each stored durably before its 200;
//! the ratio is the cost of parsing and the durable append.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use clap::Args;
use cohort_store::destinations::SecretsKey;
use cohort_store::woocommerce_rest::CallbackKeys;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::bench::{start_target_with, IngestArgs};

#[derive(Args, Clone)]
pub struct WebhooksArgs {
    /// Database for the server (default: a fresh SQLite file in a temporary folder)
    #[arg(long)]
    database_url: Option<String>,
    /// Concurrent connections (WooCommerce sends deliveries one per request)
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds per phase
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

const SECRET: &str = "bench_webhook_secret_0123456789";

/// A WooCommerce REST v3 order (the shape of the docs example), with
/// `{ID}` and `{N}` for the order id and the buyer number.
fn order_template() -> String {
    json!({
        "id": 0, "parent_id": 0, "number": "{N}", "status": "processing", "currency": "USD",
        "date_created_gmt": "2026-03-22T19:28:02", "date_modified_gmt": "2026-03-22T19:28:08",
        "discount_total": "0.00", "discount_tax": "0.00", "shipping_total": "10.00", "shipping_tax": "0.00",
        "cart_tax": "1.35", "total": "29.35", "total_tax": "1.35", "prices_include_tax": false, "customer_id": 0,
        "billing": {"first_name": "John", "last_name": "Doe", "email": "buyer{N}@example.com", "country": "US"},
        "shipping": {"first_name": "John", "last_name": "Doe", "country": "US"},
        "payment_method": "bacs", "date_paid_gmt": "2026-03-22T19:28:08", "date_completed_gmt": null,
        "line_items": [
            {"id": 315, "name": "Woo Single #1", "product_id": 93, "variation_id": 0, "quantity": 2, "subtotal": "6.00",
             "subtotal_tax": "0.45", "total": "6.00", "total_tax": "0.45", "sku": "", "price": 3},
            {"id": 316, "name": "Ship Your Idea", "product_id": 22, "variation_id": 23, "quantity": 1, "subtotal": "12.00",
             "subtotal_tax": "0.90", "total": "12.00", "total_tax": "0.90", "sku": "", "price": 12}
        ],
        "shipping_lines": [{"id": 317, "method_title": "Flat Rate", "method_id": "flat_rate", "total": "10.00", "total_tax": "0.00"}],
        "coupon_lines": [], "refunds": []
    })
    .to_string()
    .replacen("\"id\":0,", "\"id\":{ID},", 1)
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

struct Phase {
    ok: u64,
    failures: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies[((self.latencies.len() - 1) as f64 * p).round() as usize]
    }
    fn report(&self, name: &str) {
        println!(
            "{name:<40} {:>8.0} deliveries/s   p50 {:>6.2} ms   p99 {:>6.2} ms   unexpected answers {}",
            self.per_second(),
            self.percentile(0.5).as_secs_f64() * 1000.0,
            self.percentile(0.99).as_secs_f64() * 1000.0,
            self.failures
        );
    }
}

/// Sends deliveries for `seconds`; `signed`: correct signatures (expect
/// 200), else wrong ones (expect 401). Order ids start at `first_id`.
async fn phase(
    url: &str,
    args: &WebhooksArgs,
    signed: bool,
    first_id: u64,
) -> anyhow::Result<Phase> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let counter = Arc::new(AtomicU64::new(first_id));
    let failures = Arc::new(AtomicU64::new(0));
    let template = Arc::new(order_template());
    let expected = if signed { 200 } else { 401 };
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.connections.max(1) {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()?;
        let (url, counter, failures, template) = (
            url.to_owned(),
            counter.clone(),
            failures.clone(),
            template.clone(),
        );
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let id = counter.fetch_add(1, Ordering::Relaxed);
                let body = template
                    .replacen("{ID}", &id.to_string(), 1)
                    .replace("{N}", &(id % 5000).to_string());
                let signature = if signed {
                    sign(body.as_bytes())
                } else {
                    sign(format!("{body} ").as_bytes())
                };
                let sent = Instant::now();
                let request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-wc-webhook-topic", "order.updated")
                    .header("x-wc-webhook-signature", signature)
                    .header("x-wc-webhook-delivery-id", format!("{id:032x}"))
                    .body(body);
                let ok = match request.send().await {
                    Ok(r) => r.status().as_u16() == expected && r.bytes().await.is_ok(),
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
    Ok(Phase {
        ok: latencies.len() as u64,
        failures: failures.load(Ordering::Relaxed),
        elapsed,
        latencies,
    })
}

pub async fn webhooks(args: WebhooksArgs) -> anyhow::Result<()> {
    let key = SecretsKey::generate();
    let ingest = IngestArgs {
        url: None,
        write_key: None,
        database_url: args.database_url.clone(),
        connections: args.connections,
        batch_size: 1,
        seconds: args.seconds,
    };
    let env = [
        ("COHORT_DESTINATIONS__KEY", key.to_base64()),
        (
            "COHORT_WOOCOMMERCE__REST_WORKER_ENABLED",
            "false".to_owned(),
        ),
    ];
    let mut target = start_target_with(&ingest, &env).await?;
    let db = target.db.clone().context("no database")?;
    let org = target.org.clone().context("no organisation")?;
    let started = db
        .start_rest_connection(&org, "https://bench-store.example", &target.url, None)
        .await?;
    let keys = CallbackKeys {
        key_id: 1,
        consumer_key: "ck_bench".into(),
        consumer_secret: "cs_bench".into(),
        key_permissions: "read_write".into(),
    };
    db.complete_rest_connection(&key, &started.state, &keys)
        .await?;
    db.set_rest_webhook_secret(&key, &started.installation_id, SECRET)
        .await?;
    let url = format!(
        "{}/hooks/woocommerce/{}",
        target.url, started.installation_id
    );
    println!(
        "cohort bench woocommerce-webhooks: {} connections, {} s per phase, backend {}, {} cores",
        args.connections,
        args.seconds,
        target.backend,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let baseline = phase(&url, &args, false, 1).await?;
    baseline.report("verification only (wrong signature, 401)");
    let stored = phase(&url, &args, true, 1).await?;
    stored.report("signed order.updated, stored (200)");
    println!(
        "ratio stored/verification only: {:.1} %",
        100.0 * stored.per_second() / baseline.per_second().max(1.0)
    );
    let in_log = db.count_resource_messages(&org).await?;
    println!(
        "acknowledged {} deliveries, {in_log} orders in the log",
        stored.ok
    );
    anyhow::ensure!(
        in_log as u64 >= stored.ok,
        "acknowledged deliveries are missing from the log"
    );
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
