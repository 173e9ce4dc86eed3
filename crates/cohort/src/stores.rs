//! `cohort store sync|runs`: ask a connected WooCommerce store for a sync,
//! and follow its sync runs (connect.md §2).

use clap::Subcommand;
use cohort_domain::time::{format_rfc3339, from_micros};

use crate::commands::{open, resolve_org};
use crate::config::Config;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Queue a `sync_store` command for a connected WooCommerce installation
    /// (the plugin picks it up after its next heartbeat); prints the
    /// command's id
    Sync {
        /// The installation id (`cohort installations list`)
        installation: String,
        #[arg(long)]
        org: Option<String>,
    },
    /// An installation's sync runs, newest first (tab-separated: id, status,
    /// started, finished, then per resource accepted/received and rejected)
    Runs {
        installation: String,
        #[arg(long)]
        org: Option<String>,
    },
    /// Discounts (WooCommerce coupons) in a connected store
    #[command(subcommand)]
    Discount(crate::store_discounts::DiscountCommand),
}

pub async fn run(config: &Config, command: StoreCommand) -> anyhow::Result<()> {
    let db = open(config).await?;
    match command {
        StoreCommand::Sync { installation, org } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            match db.request_sync(&org.id, &installation).await? {
                Some((id, true)) => println!("{id}\tqueued"),
                Some((id, false)) => println!("{id}\talready waiting for the store"),
                None => anyhow::bail!("no connected WooCommerce installation {installation} in {}", org.name),
            }
        }
        StoreCommand::Runs { installation, org } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            if !db.list_installations(&org.id).await?.iter().any(|s| s.installation.id == installation) {
                anyhow::bail!("no installation {installation} in {}", org.name);
            }
            let runs = db.list_sync_runs(&org.id, &installation, 50).await?;
            if runs.is_empty() {
                eprintln!("no sync run yet for {installation}");
            }
            for run in runs {
                let progress: Vec<String> = run
                    .progress
                    .iter()
                    .map(|(resource, p)| format!("{resource} {}/{} rejected {}", p.accepted, p.received, p.rejected))
                    .collect();
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    run.id,
                    run.status,
                    format_rfc3339(from_micros(run.started_at)),
                    run.finished_at.map(|t| format_rfc3339(from_micros(t))).unwrap_or_else(|| "-".into()),
                    progress.join(", ")
                );
            }
        }
        StoreCommand::Discount(c) => crate::store_discounts::run(&db, c).await?,
    }
    Ok(())
}
