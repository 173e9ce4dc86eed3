//! `cohort bench send`: N personalised messages (an MJML template with
//! product blocks, compiled once) rendered per recipient, queued in the
//! outbox, and delivered by the outbox worker over loopback to postfix's
//! `smtp-sink` through a pool of C connections; then, in the same command,
//! postfix's `smtp-source` sends N messages of the same size to the same
//! sink over C sessions: the ceiling of SMTP on this machine. The worker's
//! rate against the ceiling is the figure; the render cost per message,
//! the peak RSS of the process and the cost of DKIM signing (measured on
//! its own, with the key Cohort generates) are reported beside it. Every
//! message must be `sent` at the end, or the bench fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use clap::Args;
use cohort_domain::mail::OutboxState;
use cohort_domain::secrets::SecretsKey;
use cohort_domain::suppression::MailPurpose;
use cohort_domain::tracking::TrackingKey;
use cohort_engine::mail::{Mail, MailSettings, NodeTransport, Outgoing};
use cohort_mail::{DkimKey, Envelope, LinkTracking, SmtpSettings, TlsMode, Unsubscribe};
use cohort_store::{Db, DbOptions};
use serde_json::json;

use crate::bench_project::tempfile_dir;

#[derive(Args, Clone)]
pub struct SendArgs {
    /// Database of the outbox (default: a fresh SQLite file in a temporary
    /// folder). Use an empty PostgreSQL database: the benchmark writes into it.
    #[arg(long)]
    database_url: Option<String>,
    /// Messages rendered and sent (and sent by smtp-source for the ceiling)
    #[arg(long, default_value_t = 100_000)]
    messages: u32,
    /// SMTP connections of the worker's pool, and smtp-source's sessions
    #[arg(long, default_value_t = 20)]
    connections: u32,
    /// Messages the worker claims per round (the server's default: 200)
    #[arg(long, default_value_t = 200)]
    batch: u32,
    /// Messages signed to time DKIM on its own
    #[arg(long, default_value_t = 2000)]
    dkim_samples: u32,
    /// postfix's smtp-sink
    #[arg(long, default_value = "/usr/sbin/smtp-sink")]
    smtp_sink: PathBuf,
    /// postfix's smtp-source
    #[arg(long, default_value = "/usr/sbin/smtp-source")]
    smtp_source: PathBuf,
}

const FROM: &str = "Blue Mugs <news@bluemugs.example>";

/// An abandoned-cart message with three product blocks, as the creative
/// issue's templates will be: images, names, prices, buttons.
const TEMPLATE: &str = r##"<mjml>
  <mj-head>
    <mj-title>{{ profile.first_name }}, your cart at {{ store.name }}</mj-title>
    <mj-preview>{{ cart.items|length }} items are waiting for you</mj-preview>
    <mj-attributes><mj-all font-family="Helvetica, Arial, sans-serif" /></mj-attributes>
  </mj-head>
  <mj-body background-color="#f4f4f4">
    <mj-section background-color="#ffffff">
      <mj-column>
        <mj-image width="160px" src="{{ store.logo_url }}" alt="{{ store.name }}" href="{{ store.url }}" />
        <mj-text font-size="20px">Hi {{ profile.first_name }},</mj-text>
        <mj-text>You left these behind. They are still in your cart, at these prices, until {{ cart.expires }}.</mj-text>
      </mj-column>
    </mj-section>
    {% for item in cart.items %}
    <mj-section background-color="#ffffff">
      <mj-column width="40%"><mj-image src="{{ item.image }}" alt="{{ item.name }}" href="{{ item.url }}" /></mj-column>
      <mj-column width="60%">
        <mj-text font-size="16px" font-weight="bold">{{ item.name }}</mj-text>
        <mj-text>{{ item.quantity }} × {{ item.price }}</mj-text>
        <mj-button href="{{ item.url }}" background-color="#0b5cad">View {{ item.name }}</mj-button>
      </mj-column>
    </mj-section>
    {% endfor %}
    <mj-section background-color="#ffffff">
      <mj-column>
        <mj-button href="{{ cart.recover_url }}" background-color="#0b5cad" font-size="18px">Back to your cart</mj-button>
        <mj-text font-size="11px" color="#777777"><a href="{{ unsubscribe_url }}" data-cohort-notrack>Unsubscribe</a> · {{ store.address }}</mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>"##;

const PRODUCTS: [(&str, &str); 6] = [
    ("Blue Mug", "€24.00"),
    ("Teapot", "€39.50"),
    ("Saucer set", "€18.90"),
    ("Espresso cup", "€12.00"),
    ("Milk jug", "€21.00"),
    ("Tea towel", "€9.50"),
];

fn context(i: u32) -> serde_json::Value {
    let items: Vec<serde_json::Value> = (0..3)
        .map(|k| {
            let (name, price) = PRODUCTS[((i + k) % PRODUCTS.len() as u32) as usize];
            let slug = name.to_lowercase().replace(' ', "-");
            json!({
                "name": name, "price": price, "quantity": 1 + (i + k) % 3,
                "url": format!("https://bluemugs.example/p/{slug}?ref=cart"),
                "image": format!("https://bluemugs.example/img/{slug}.jpg"),
            })
        })
        .collect();
    json!({
        "store": {
            "name": "Blue Mugs", "url": "https://bluemugs.example/",
            "logo_url": "https://bluemugs.example/logo.png",
            "address": "Blue Mugs Ltd, 1 Harbour Street, Leith",
        },
        "profile": {"first_name": format!("Customer {i}")},
        "cart": {
            "items": items, "expires": "Sunday",
            "recover_url": format!("https://bluemugs.example/cart/recover?c={i}"),
        },
        "unsubscribe_url": format!("https://cdp.bluemugs.example/u/{i}"),
    })
}

fn recipient(i: u32) -> String {
    format!("customer{i}@example.com")
}

/// postfix's smtp-sink on a free loopback port, stopped when dropped.
struct Sink {
    child: std::process::Child,
    port: u16,
}

impl Sink {
    fn start(program: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut command = Command::new(program);
        // smtp-sink refuses to run as root without a user to drop to.
        if std::env::var("USER").as_deref() == Ok("root") || is_root() {
            command.args(["-u", "nobody"]);
        }
        let child = command
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (Debian package postfix)",
                    program.display()
                )
            })?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("smtp-sink does not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { child, port })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A field of /proc/self/status in kB (`VmRSS`, `VmHWM`).
fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The peak resident size seen by a sampler every 50 ms, while it runs.
struct RssPeak {
    peak_kb: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssPeak {
    fn start() -> Self {
        let peak_kb = Arc::new(AtomicU64::new(0));
        let seen = peak_kb.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(kb) = status_kb("VmRSS:") {
                    seen.fetch_max(kb, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { peak_kb, task }
    }

    fn stop(self) -> u64 {
        self.task.abort();
        self.peak_kb.load(Ordering::Relaxed)
    }
}

pub async fn send(args: SendArgs) -> anyhow::Result<()> {
    if args.messages == 0 || args.connections == 0 {
        bail!("--messages and --connections must be at least 1");
    }
    for program in [&args.smtp_sink, &args.smtp_source] {
        if !program.exists() {
            bail!(
                "{} is missing: install the Debian package postfix",
                program.display()
            );
        }
    }
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
    let sink = Sink::start(&args.smtp_sink)?;
    println!(
        "cohort bench send: {} messages, {} connections to smtp-sink on 127.0.0.1:{}, {}",
        args.messages,
        args.connections,
        sink.port,
        db.backend().as_str()
    );
    let rss_before_kb = status_kb("VmRSS:").unwrap_or(0);
    let peak = RssPeak::start();

    let mut settings = MailSettings::folder(dir.0.join("outbox"), FROM);
    settings.transport = NodeTransport::Smtp(SmtpSettings {
        host: "127.0.0.1".into(),
        port: sink.port,
        tls: TlsMode::None,
        username: None,
        password: None,
        max_connections: args.connections,
        timeout: Duration::from_secs(30),
        hello_name: None,
    });
    settings.batch = args.batch.max(1);
    let mail = Mail::new(db.clone(), SecretsKey::generate(), settings)?;

    // 1. Render and queue, in batches, as a campaign would.
    let compile_started = Instant::now();
    let template = cohort_mail::compile("{{ profile.first_name }}, your cart is waiting", TEMPLATE)
        .map_err(|e| anyhow::anyhow!("the bench template: {e}"))?;
    let compile_time = compile_started.elapsed();
    let tracking_key = TrackingKey::new(cohort_domain::ids::random_token(32).into_bytes())
        .map_err(|e| anyhow::anyhow!("tracking key: {e}"))?;
    let mut render_time = Duration::ZERO;
    let mut bytes_rendered: u64 = 0;
    let queue_started = Instant::now();
    let mut batch = Vec::with_capacity(500);
    for i in 0..args.messages {
        let started = Instant::now();
        // Campaigns will track with the outbox id they are given; the
        // bench's per-recipient key costs the same to sign.
        let tracked_id = format!("bench-{i}");
        let body = cohort_mail::render_message(
            &template,
            &context(i),
            &LinkTracking {
                base_url: "https://cdp.bluemugs.example",
                key: &tracking_key,
                message_id: &tracked_id,
            },
        )
        .map_err(|e| anyhow::anyhow!("rendering message {i}: {e}"))?;
        render_time += started.elapsed();
        bytes_rendered += (body.html.len() + body.text.len()) as u64;
        batch.push(Outgoing {
            send_key: "campaign:cmp_bench".into(),
            to: recipient(i),
            from: None,
            purpose: MailPurpose::Marketing,
            body,
            unsubscribe: Some(Unsubscribe {
                https: format!("https://cdp.bluemugs.example/u/{i}"),
                mailto: "mailto:unsubscribe@bluemugs.example".into(),
            }),
            profile_id: None,
            user_id: None,
            campaign_id: Some("cmp_bench".into()),
            flow_id: None,
            provider_id: None,
        });
        if batch.len() == 500 || i + 1 == args.messages {
            mail.enqueue_batch(&org.id, &batch).await?;
            batch.clear();
        }
    }
    let queue_time = queue_started.elapsed();
    let per_render_us = render_time.as_secs_f64() * 1e6 / f64::from(args.messages);
    let body_bytes = bytes_rendered / u64::from(args.messages);
    println!(
        "  template compiled once in {:.1} ms; rendered {} messages in {:.1} s ({per_render_us:.0} µs each, body {body_bytes} bytes); queued with them in {:.1} s",
        compile_time.as_secs_f64() * 1e3,
        args.messages,
        render_time.as_secs_f64(),
        queue_time.as_secs_f64()
    );

    // The size on the wire: one message built as the worker builds it.
    let sample = cohort_mail::render_message(
        &template,
        &context(0),
        &LinkTracking {
            base_url: "https://cdp.bluemugs.example",
            key: &tracking_key,
            message_id: "bench-0",
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let envelope = Envelope {
        from: FROM.into(),
        to: recipient(0),
        return_path: None,
        message_id: "msg_bench0000000000000000@bluemugs.example".into(),
        unsubscribe: Some(Unsubscribe {
            https: "https://cdp.bluemugs.example/u/0".into(),
            mailto: "mailto:unsubscribe@bluemugs.example".into(),
        }),
        date: SystemTime::now(),
    };
    let wire = cohort_mail::build(&envelope, &sample, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let wire_bytes = wire.bytes.len();

    // 2. The outbox worker sends everything.
    let send_started = Instant::now();
    let owner = format!("bench-{}", cohort_domain::ids::random_token(8));
    let mut rounds = 0u32;
    loop {
        let report = mail.send_round(&owner).await?;
        rounds += 1;
        if report.claimed == 0 {
            break;
        }
    }
    let send_time = send_started.elapsed();
    let rss_peak_kb = peak.stop().max(status_kb("VmRSS:").unwrap_or(0));
    let counts = db.outbox_counts(&org.id, None, None).await?;
    let sent = counts
        .iter()
        .find(|(s, _)| *s == OutboxState::Sent)
        .map_or(0, |(_, n)| *n);
    if sent != i64::from(args.messages) {
        bail!(
            "only {sent} of {} messages were sent: {counts:?}",
            args.messages
        );
    }
    let send_rate = f64::from(args.messages) / send_time.as_secs_f64();
    println!(
        "  outbox worker: {} sent in {:.1} s over {rounds} rounds: {send_rate:.0} messages/s",
        args.messages,
        send_time.as_secs_f64()
    );

    // 3. The ceiling: smtp-source, messages of the same size, same sink.
    let ceiling_started = Instant::now();
    let status = Command::new(&args.smtp_source)
        .args(["-d", "-s"])
        .arg(args.connections.to_string())
        .arg("-m")
        .arg(args.messages.to_string())
        .arg("-l")
        .arg(wire_bytes.to_string())
        .args(["-f", "news@bluemugs.example", "-t", "customer@example.com"])
        .arg(format!("127.0.0.1:{}", sink.port))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .context("cannot run smtp-source")?;
    let ceiling_time = ceiling_started.elapsed();
    if !status.success() {
        bail!("smtp-source failed: {status}");
    }
    let ceiling_rate = f64::from(args.messages) / ceiling_time.as_secs_f64();
    println!(
        "  smtp-source ceiling: {} messages of {wire_bytes} bytes in {:.1} s: {ceiling_rate:.0} messages/s",
        args.messages,
        ceiling_time.as_secs_f64()
    );

    // 4. DKIM on its own: the same message built unsigned and signed.
    let key = tokio::task::spawn_blocking(|| DkimKey::generate("bluemugs.example", "cohort"))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let samples = args.dkim_samples.max(1);
    let time_builds = |dkim: Option<&DkimKey>| -> anyhow::Result<Duration> {
        let started = Instant::now();
        for _ in 0..samples {
            cohort_mail::build(&envelope, &sample, dkim).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(started.elapsed())
    };
    let unsigned = time_builds(None)?;
    let signed = time_builds(Some(&key))?;
    let dkim_us = (signed.as_secs_f64() - unsigned.as_secs_f64()) * 1e6 / f64::from(samples);
    let build_us = unsigned.as_secs_f64() * 1e6 / f64::from(samples);

    let ratio = send_rate / ceiling_rate * 100.0;
    println!(
        "  result: {send_rate:.0} / {ceiling_rate:.0} messages/s = {ratio:.1} % of the ceiling; render {per_render_us:.0} µs/message, build {build_us:.0} µs, DKIM signing {dkim_us:.0} µs more (RSA 2048); peak RSS {:.0} MB (at start {:.0} MB)",
        rss_peak_kb as f64 / 1024.0,
        rss_before_kb as f64 / 1024.0
    );
    println!(
        "{}",
        json!({
            "backend": db.backend().as_str(),
            "messages": args.messages,
            "connections": args.connections,
            "wire_bytes": wire_bytes,
            "render_us_per_message": per_render_us.round(),
            "queue_seconds": queue_time.as_secs_f64(),
            "send_seconds": send_time.as_secs_f64(),
            "send_per_second": send_rate.round(),
            "ceiling_per_second": ceiling_rate.round(),
            "ratio_percent": (ratio * 10.0).round() / 10.0,
            "build_us_per_message": build_us.round(),
            "dkim_us_per_message": dkim_us.round(),
            "rss_peak_mb": (rss_peak_kb as f64 / 1024.0).round(),
        })
    );
    drop(sink);
    drop(dir);
    Ok(())
}
