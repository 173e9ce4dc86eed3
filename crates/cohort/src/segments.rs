//! `cohort segment …`: saved segments on the database directly, through
//! the same service as the admin API (`cohort_engine::segments`): create,
//! list, show, members, preview, recompute. Human-readable by default;
//! `--json` prints what the API answers.

use anyhow::Context;
use clap::Subcommand;
use cohort_api::admin::segments::{MemberView, PreviewView, SegmentView};
use cohort_domain::ids::OrgId;
use cohort_domain::segments::Rule;
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_engine::segments::{membership, RuleSource, SegmentDraft, SegmentError, Segments};
use cohort_store::segments::SegmentRecord;

use crate::commands::{open, resolve_org};
use crate::config::Config;

#[derive(Subcommand)]
pub enum SegmentCommand {
    /// Create a segment from a rule (text or JSON); its members are computed at once
    Create {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        rule: RuleArgs,
        #[arg(long)]
        description: Option<String>,
        /// Print the segment as the API shows it
        #[arg(long)]
        json: bool,
    },
    /// List segments (tab-separated: id, members, name, rule)
    List {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show a segment: its rule in text and JSON, members, times
    Show {
        #[arg(long)]
        org: Option<String>,
        /// Segment id (seg_…) or exact name
        segment: String,
        #[arg(long)]
        json: bool,
    },
    /// A page of a segment's members in profile id order (tab-separated:
    /// profile id, email, entered at); the next page's cursor goes to stderr
    Members {
        #[arg(long)]
        org: Option<String>,
        /// Segment id (seg_…) or exact name
        segment: String,
        /// 1 to 1000
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// The cursor printed after the previous page
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Count what a rule selects now and show up to ten members; nothing is saved
    Preview {
        #[arg(long)]
        org: Option<String>,
        #[command(flatten)]
        rule: RuleArgs,
        #[arg(long)]
        json: bool,
    },
    /// Bring live membership up to date, then recompute a segment from
    /// scratch and report what differed
    Recompute {
        #[arg(long)]
        org: Option<String>,
        /// Segment id (seg_…) or exact name
        segment: String,
    },
    /// Create the ready-made segments (Repeat Customers, VIP, Churn Risk, …)
    /// this organisation does not have yet, with its store's amounts
    InstallDefaults {
        #[arg(long)]
        org: Option<String>,
    },
    /// Score every customer's recency, frequency and monetary value now
    /// (done daily by the server) and print the group sizes
    Rfm {
        #[arg(long)]
        org: Option<String>,
    },
}

/// A rule in one of its two faces.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct RuleArgs {
    /// The text form, e.g. 'performed "Order Completed" >= 1 times'
    #[arg(long)]
    rule: Option<String>,
    /// The JSON form (docs/SEGMENTS.md), e.g. '{"kind":"subscribed"}'
    #[arg(long)]
    ast: Option<String>,
}

impl RuleArgs {
    fn source(self) -> anyhow::Result<RuleSource> {
        match (self.rule, self.ast) {
            (Some(text), _) => Ok(RuleSource::Text(text)),
            (None, Some(json)) => {
                let rule: Rule =
                    serde_json::from_str(&json).context("--ast is not a rule in JSON form")?;
                Ok(RuleSource::Ast(rule))
            }
            (None, None) => anyhow::bail!("give --rule TEXT or --ast JSON"),
        }
    }
}

/// The engine's refusal as a message for the operator; a parse error shows
/// the line with a caret under the column.
fn explain(e: SegmentError, source: Option<&RuleSource>) -> anyhow::Error {
    match e {
        SegmentError::InvalidRule(p) => {
            let mut message = format!(
                "the rule does not parse: line {}, column {}: expected {}, found {}",
                p.line, p.column, p.expected, p.found
            );
            if let Some(RuleSource::Text(text)) = source {
                if let Some(line) = text.lines().nth(p.line.saturating_sub(1)) {
                    message.push_str(&format!(
                        "\n  {line}\n  {}^",
                        " ".repeat(p.column.saturating_sub(1))
                    ));
                }
            }
            anyhow::anyhow!(message)
        }
        SegmentError::InvalidAst(m) => anyhow::anyhow!("the rule is not valid: {m}"),
        SegmentError::NotFound => anyhow::anyhow!("no such segment"),
        other => anyhow::anyhow!(other),
    }
}

fn time(us: i64) -> String {
    format_rfc3339(from_micros(us))
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_segment(record: SegmentRecord, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&SegmentView::from(record));
    }
    println!("{} ({})", record.name, record.segment_id);
    if let Some(d) = &record.description {
        println!("  description: {d}");
    }
    println!("  rule:        {}", record.rule_text);
    println!("  members:     {}", record.member_count);
    println!("  created:     {}", time(record.created_at_us));
    println!("  updated:     {}", time(record.updated_at_us));
    println!("  ast:         {}", serde_json::to_string(&record.rule)?);
    Ok(())
}

async fn find(service: &Segments, org: &OrgId, segment: &str) -> anyhow::Result<SegmentRecord> {
    match service.find(org, segment).await {
        Err(SegmentError::NotFound) => anyhow::bail!("no segment has the id or name \"{segment}\""),
        other => other.map_err(|e| explain(e, None)),
    }
}

pub async fn run(config: &Config, command: SegmentCommand) -> anyhow::Result<()> {
    let db = open(config).await?;
    let service = Segments::new(db.clone());
    match command {
        SegmentCommand::InstallDefaults { org } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let report = service
                .install_defaults(&org.id)
                .await
                .map_err(|e| explain(e, None))?;
            for name in &report.created {
                println!("created\t{name}");
            }
            for name in &report.kept {
                println!("kept\t{name}\t(a segment of that name exists)");
            }
            println!(
                "{} created, {} kept",
                report.created.len(),
                report.kept.len()
            );
        }
        SegmentCommand::Rfm { org } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let report = service
                .recompute_rfm(&org.id)
                .await
                .map_err(|e| explain(e, None))?;
            println!(
                "{} customers scored; {} segments reading rfm.* recomputed",
                report.customers, report.segments
            );
            for g in db.rfm_groups(&org.id).await? {
                println!(
                    "{}\t{} customers\t{} spent",
                    g.group,
                    g.customers,
                    rust_decimal::Decimal::new(g.spent_e4, 4).normalize()
                );
            }
        }
        SegmentCommand::Create {
            org,
            name,
            rule,
            description,
            json,
        } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let source = rule.source()?;
            let created = service
                .create(
                    &org.id,
                    SegmentDraft {
                        name,
                        description,
                        rule: source.clone(),
                    },
                )
                .await
                .map_err(|e| explain(e, Some(&source)))?;
            print_segment(created, json)?;
        }
        SegmentCommand::List { org, json } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let mut all = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = service
                    .list(&org.id, after.as_deref(), 1000)
                    .await
                    .map_err(|e| explain(e, None))?;
                let full = page.len() == 1000;
                after = page.last().map(|r| r.segment_id.clone());
                all.extend(page);
                if !full {
                    break;
                }
            }
            if json {
                let views: Vec<SegmentView> = all.into_iter().map(SegmentView::from).collect();
                return print_json(&views);
            }
            for r in all {
                println!(
                    "{}\t{}\t{}\t{}",
                    r.segment_id, r.member_count, r.name, r.rule_text
                );
            }
        }
        SegmentCommand::Show { org, segment, json } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            print_segment(find(&service, &org.id, &segment).await?, json)?;
        }
        SegmentCommand::Members {
            org,
            segment,
            limit,
            cursor,
            json,
        } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let record = find(&service, &org.id, &segment).await?;
            let members = service
                .members(&org.id, &record.segment_id, cursor.as_deref(), limit)
                .await
                .map_err(|e| explain(e, None))?;
            let next = (members.len() == limit as usize)
                .then(|| members.last().map(|m| m.profile_id.clone()))
                .flatten();
            if json {
                return print_json(&serde_json::json!({
                    "data": members.into_iter().map(MemberView::from).collect::<Vec<_>>(),
                    "next_cursor": next,
                }));
            }
            for m in members {
                println!(
                    "{}\t{}\t{}",
                    m.profile_id,
                    m.email.as_deref().unwrap_or("-"),
                    time(m.entered_at_us)
                );
            }
            if let Some(next) = next {
                eprintln!("next page: --cursor {next}");
            }
        }
        SegmentCommand::Preview { org, rule, json } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let source = rule.source()?;
            let preview = service
                .preview(&org.id, &source)
                .await
                .map_err(|e| explain(e, Some(&source)))?;
            if json {
                return print_json(&PreviewView {
                    count: preview.count,
                    sample: preview.sample,
                    ast: preview.rule,
                    rule: preview.text,
                });
            }
            println!("{} profiles match: {}", preview.count, preview.text);
            for p in &preview.sample {
                println!("{}\t{}", p.id, p.email.as_deref().unwrap_or("-"));
            }
        }
        SegmentCommand::Recompute { org, segment } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let record = find(&service, &org.id, &segment).await?;
            let live = membership::drain(&db, service.now_us())
                .await
                .map_err(|e| explain(e, None))?;
            let report = service
                .recompute(&org.id, &record.segment_id)
                .await
                .map_err(|e| explain(e, None))?;
            println!(
                "{} ({}): {} members; the recompute found {} to enter and {} to exit \
                 (live membership first caught up: {} entered, {} exited)",
                record.name,
                record.segment_id,
                report.members,
                report.entered,
                report.exited,
                live.entered,
                live.exited
            );
        }
    }
    Ok(())
}
