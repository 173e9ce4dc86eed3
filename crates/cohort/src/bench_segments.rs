//! `cohort bench segments`: a generated store (default 1 M profiles, 10 M
//! events over two years), then (a) a full recompute of each of the spec's
//! benchmark rules through `Db::segment_members`, (b) DuckDB running the
//! equivalent SQL over the same data as Parquet, side by side, counts held
//! equal, (c) the editor's live count (`Db::segment_count`) p50/p95 over
//! varied rules, (d) the RFM recompute over every customer. Event →
//! membership latency under load is `cohort bench segment-latency`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use cohort_domain::segments::{parse, Rule};
use cohort_store::{Db, DbOptions};

use crate::bench_segments_data::{self as data, CsvFiles, Sink, NOW_US};

#[derive(Args, Clone)]
pub struct SegmentsArgs {
    /// Database to fill (default: a fresh SQLite file in a temporary folder).
    /// Use an empty PostgreSQL database: the benchmark writes into it.
    #[arg(long)]
    database_url: Option<String>,
    /// Profiles in the store
    #[arg(long, default_value_t = 1_000_000)]
    profiles: u32,
    /// Events in the log (one identify per profile included)
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Seed of the generated store
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Timed runs of each rule (Cohort: the best is reported; DuckDB: best
    /// of as many after a warm-up)
    #[arg(long, default_value_t = 2)]
    runs: u32,
    /// Live counts timed for the preview percentiles
    #[arg(long, default_value_t = 50)]
    previews: u32,
    /// Skip DuckDB (no Python needed)
    #[arg(long)]
    no_duckdb: bool,
    /// Print each rule's query plan (PostgreSQL: EXPLAIN ANALYZE)
    #[arg(long)]
    explain: bool,
    /// Python interpreter for DuckDB (default: python3, with duckdb
    /// installed into a venv in the temporary folder when missing)
    #[arg(long)]
    python: Option<String>,
}

/// The spec's benchmark rules; rule 5's segment is defined by [`lookup`].
pub(crate) const RULES: [&str; 5] = [
    r#"performed "Order Completed" = 2 times and not performed "Email Opened" within 30 days"#,
    r#"orders.total_spent > 200 and last_seen within 90 days"#,
    r#"performed "Product Viewed" >= 3 times within 7 days where properties.category = "Shoes" and not performed "Order Completed" within 7 days"#,
    r#"trait.country = "DE" or (tag "vip" and orders.count >= 3)"#,
    r#"in segment "Repeat Customers" and not opened email within 60 days"#,
];

/// Rules the editor's live count is timed on, besides the five.
const PREVIEW_RULES: [&str; 8] = [
    r#"trait.country = "FR""#,
    r#"opened email within 7 days"#,
    r#"bought category "Shoes" within 30 days"#,
    r#"orders.count >= 1 and subscribed"#,
    r#"tag "ecommerce.in_cart" and not performed "Order Completed" within 1 day"#,
    r#"performed "Product Viewed" >= 5 times within 30 days where properties.category = "Hats""#,
    r#"orders.average_value > 60"#,
    r#"clicked email within 90 days or last_seen within 3 days"#,
];

pub(crate) fn lookup(name: &str) -> Option<Rule> {
    (name == "Repeat Customers").then(|| parse("orders.count >= 2").ok())?
}

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn segments(args: SegmentsArgs) -> anyhow::Result<()> {
    let dir = TempDir(std::env::temp_dir().join(format!(
        "cohort-bench-segments-{}",
        cohort_domain::ids::random_token(10)
    )));
    std::fs::create_dir_all(&dir.0)?;
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
    let rules: Vec<Rule> = RULES
        .iter()
        .map(|r| parse(r).map_err(|e| anyhow::anyhow!("{r}: {e}")))
        .collect::<Result<_, _>>()?;
    println!(
        "cohort bench segments: {} profiles, {} events (seed {}) on {}; now = {}",
        args.profiles,
        args.events,
        args.seed,
        db.backend().as_str(),
        cohort_domain::time::format_rfc3339(cohort_domain::time::from_micros(NOW_US))
    );

    // The store, and the same rows as CSV for DuckDB.
    let python = if args.no_duckdb {
        None
    } else {
        Some(python_with_duckdb(args.python.as_deref(), &dir.0)?)
    };
    let started = Instant::now();
    let mut sink = Sink {
        loader: db.bulk_loader()?,
        org: org.id.as_str().to_owned(),
        source: source.id.as_str().to_owned(),
        csv: if python.is_some() {
            Some(CsvFiles::create(&dir.0)?)
        } else {
            None
        },
    };
    let written = data::generate(&mut sink, args.seed, args.profiles, args.events).await?;
    if let Some(csv) = sink.csv.take() {
        csv.finish()?;
    }
    sink.loader.finish().await?;
    println!(
        "  store written in {:.0} s: {} events, {} profiles, {} orders, {} order lines, {} tags",
        started.elapsed().as_secs_f64(),
        written.events,
        written.profiles,
        written.orders,
        written.order_lines,
        written.tags
    );

    // (a) Cohort: a full recompute of each rule.
    let mut cohort = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let mut best = Duration::MAX;
        let mut count = 0;
        let mut all = Vec::new();
        for _ in 0..args.runs.max(1) {
            let started = Instant::now();
            let members = db.segment_members(&org.id, rule, NOW_US, &lookup).await?;
            let took = started.elapsed();
            all.push(format!("{:.2}", took.as_secs_f64()));
            best = best.min(took);
            count = members.len() as u64;
        }
        let started = Instant::now();
        let counted = db.segment_count(&org.id, rule, NOW_US, &lookup).await?;
        let count_took = started.elapsed();
        if counted != count {
            bail!(
                "rule {}: segment_count {counted} but {count} members",
                i + 1
            );
        }
        println!(
            "  rule {}: {count} members, segment_members {:.2} s (runs {}), segment_count {:.2} s",
            i + 1,
            best.as_secs_f64(),
            all.join(", "),
            count_took.as_secs_f64()
        );
        cohort.push((count, best, count_took));
        if args.explain {
            for line in db
                .segment_plan(&org.id, rule, NOW_US, &lookup, true)
                .await?
            {
                println!("      {line}");
            }
        }
    }

    // (b) DuckDB over the same data as Parquet.
    if let Some(python) = &python {
        let script = dir.0.join("bench_segments_duckdb.py");
        std::fs::write(&script, include_str!("bench_segments_duckdb.py"))?;
        let output = Command::new(python)
            .arg(&script)
            .arg(&dir.0)
            .arg(NOW_US.to_string())
            .arg(args.runs.max(1).to_string())
            .output()
            .context("cannot run the DuckDB script")?;
        if !output.status.success() {
            bail!(
                "the DuckDB script failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).context("the DuckDB script printed no JSON")?;
        println!(
            "  DuckDB {}: CSV → Parquet in {:.1} s (not timed below)",
            report["duckdb"].as_str().unwrap_or("?"),
            report["load_s"].as_f64().unwrap_or(0.0)
        );
        println!("  | rule | count | Cohort s | DuckDB s | Cohort/DuckDB |");
        let mut mismatches = Vec::new();
        for (i, (count, best, _)) in cohort.iter().enumerate() {
            let r = &report["rules"][(i + 1).to_string()];
            let duck_count = r["count"].as_u64().unwrap_or(u64::MAX);
            let duck = r["seconds"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_f64)
                .fold(f64::INFINITY, f64::min);
            if duck_count != *count {
                mismatches.push(format!(
                    "rule {}: Cohort {count}, DuckDB {duck_count}",
                    i + 1
                ));
            }
            println!(
                "  | {} | {count} | {:.2} | {duck:.3} | {:.1} |",
                i + 1,
                best.as_secs_f64(),
                best.as_secs_f64() / duck
            );
        }
        if !mismatches.is_empty() {
            bail!("Cohort and DuckDB disagree: {}", mismatches.join("; "));
        }
    }

    // (c) The editor's live count.
    let preview_rules: Vec<Rule> = RULES
        .iter()
        .chain(PREVIEW_RULES.iter())
        .map(|r| parse(r).map_err(|e| anyhow::anyhow!("{r}: {e}")))
        .collect::<Result<_, _>>()?;
    let mut times = Vec::new();
    for i in 0..args.previews as usize {
        let rule = &preview_rules[i % preview_rules.len()];
        let started = Instant::now();
        db.segment_count(&org.id, rule, NOW_US, &lookup).await?;
        times.push(started.elapsed());
    }
    times.sort();
    let pct = |p: f64| {
        times
            .get(((times.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
    };
    println!(
        "  preview count ({} counts over {} rules): p50 {:.3} s, p95 {:.3} s, max {:.3} s",
        times.len(),
        preview_rules.len(),
        pct(0.5),
        pct(0.95),
        times.last().copied().unwrap_or_default().as_secs_f64()
    );

    // (d) RFM: every customer scored by the store's tertiles and the scores
    // replaced, as the daily loop and `cohort segment rfm` do.
    let segments =
        cohort_engine::segments::Segments::with_clock(db.clone(), std::sync::Arc::new(|| NOW_US));
    let started = Instant::now();
    let rfm = segments.recompute_rfm(&org.id).await?;
    println!(
        "  RFM recompute: {} customers of {} profiles scored in {:.2} s",
        rfm.customers,
        written.profiles,
        started.elapsed().as_secs_f64()
    );
    println!("  event → membership latency: `cohort bench segment-latency` (HTTP load beside the worker)");
    db.close().await;
    Ok(())
}

/// A Python that imports duckdb: the given one, else `python3` if it has
/// it, else a venv in `dir` with duckdb installed from PyPI.
fn python_with_duckdb(given: Option<&str>, dir: &Path) -> anyhow::Result<String> {
    let has_duckdb = |python: &str| {
        Command::new(python)
            .args(["-c", "import duckdb"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if let Some(p) = given {
        if has_duckdb(p) {
            return Ok(p.to_owned());
        }
        bail!("{p} cannot import duckdb");
    }
    if has_duckdb("python3") {
        return Ok("python3".into());
    }
    let venv = dir.join("venv");
    println!("  installing duckdb (PyPI) into {}", venv.display());
    let status = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv)
        .status()
        .context("python3 is needed for the DuckDB comparison (or pass --no-duckdb)")?;
    if !status.success() {
        bail!("python3 -m venv failed");
    }
    let python = venv.join("bin/python").display().to_string();
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "duckdb"])
        .status()?;
    if !status.success() || !has_duckdb(&python) {
        bail!("pip could not install duckdb");
    }
    Ok(python)
}

#[cfg(test)]
mod tests;
