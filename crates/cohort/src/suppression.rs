//! `cohort suppression list|add|remove`: the suppression list on the
//! database directly, as the API keeps it (addresses normalised, one row
//! per reason, every change logged with its source `cli`).

use anyhow::{bail, Context};
use clap::Subcommand;
use cohort_domain::accounts::normalise_email;
use cohort_domain::suppression::SuppressionReason;
use cohort_store::suppressions::SuppressionQuery;

use crate::commands::{open, resolve_org};
use crate::config::Config;

#[derive(Subcommand)]
pub enum SuppressionCommand {
    /// The suppressed addresses, in address order (tab-separated: email, reason, since, detail)
    List {
        #[arg(long)]
        org: Option<String>,
        /// Part of the address
        #[arg(long)]
        search: Option<String>,
        /// hard_bounce, soft_bounces, complaint, unsubscribed, manual or imported
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Suppress an address (no marketing mail; a hard bounce stops transactional mail too)
    Add {
        #[arg(long)]
        org: Option<String>,
        email: String,
        /// manual (default), imported, unsubscribed, hard_bounce or complaint
        #[arg(long, default_value = "manual")]
        reason: String,
        /// A note kept with it
        #[arg(long)]
        detail: Option<String>,
    },
    /// Lift every suppression of an address, saying why
    Remove {
        #[arg(long)]
        org: Option<String>,
        email: String,
        /// Why it is lifted (kept in the log)
        #[arg(long)]
        reason: String,
    },
}

fn reason(value: &str) -> anyhow::Result<SuppressionReason> {
    value.parse().map_err(|_| {
        anyhow::anyhow!(
            "--reason: one of hard_bounce, soft_bounces, complaint, unsubscribed, manual, imported"
        )
    })
}

pub async fn run(config: &Config, command: SuppressionCommand) -> anyhow::Result<()> {
    let db = open(config).await?;
    match command {
        SuppressionCommand::List {
            org,
            search,
            reason: by_reason,
            limit,
        } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let by_reason = by_reason.as_deref().map(reason).transpose()?;
            let rows = db
                .suppressions_page(
                    &org.id,
                    &SuppressionQuery {
                        search: search.as_deref(),
                        reason: by_reason,
                        after: None,
                        limit: limit.clamp(1, 10_000),
                    },
                )
                .await?;
            for s in rows {
                println!(
                    "{}\t{}\t{}\t{}",
                    s.email,
                    s.reason.as_str(),
                    cohort_domain::time::format_rfc3339(cohort_domain::time::from_micros(
                        s.created_at_us
                    )),
                    s.detail.unwrap_or_default()
                );
            }
        }
        SuppressionCommand::Add {
            org,
            email,
            reason: why,
            detail,
        } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let email = normalise_email(&email).context("email")?;
            let why = reason(&why)?;
            if !why.addable_by_merchant() {
                bail!("--reason: soft_bounces is counted from deliveries, not added");
            }
            let added = db
                .suppress(&org.id, &email, why, detail.as_deref(), "cli")
                .await?;
            if added {
                println!("suppressed\t{email}\t{}", why.as_str());
            } else {
                println!("already suppressed\t{email}\t{}", why.as_str());
            }
        }
        SuppressionCommand::Remove { org, email, reason } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let email = normalise_email(&email).context("email")?;
            if reason.trim().is_empty() {
                bail!("--reason: say why the suppression is lifted");
            }
            match db.unsuppress(&org.id, &email, reason.trim(), "cli").await? {
                0 => bail!("{email} is not suppressed"),
                n => println!("lifted\t{email}\t{n} reason(s)"),
            }
        }
    }
    Ok(())
}
