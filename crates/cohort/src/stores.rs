//! `cohort store sync|runs|connect-rest|discount`: ask a connected
//! WooCommerce store for a sync, follow its sync runs (connect.md §2),
//! connect a store without the plugin (connect.md §6, docs/WOOCOMMERCE.md),
//! and manage its discounts (connect.md §5, docs/DISCOUNTS.md).

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
    /// Connect a WooCommerce store without the plugin (its REST API and
    /// webhooks): prints the installation id and the WooCommerce authorize
    /// URL to open, signed in to the store's WordPress as an administrator,
    /// within 15 minutes. The history pull starts once WooCommerce calls
    /// back (`cohort serve` must be reachable at server.public_url, https)
    ConnectRest {
        /// The store's home URL, https://shop.example
        store_url: String,
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
        StoreCommand::ConnectRest { store_url, org } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let Some(store_url) = cohort_api::normalize_store_url(&store_url) else {
                anyhow::bail!(
                    "{store_url:?} is not an http:// or https:// home URL (without ? or #)"
                );
            };
            let cohort_url = config.base_url(None);
            if !cohort_url.starts_with("https://") {
                eprintln!("warning: WooCommerce only calls back to https URLs; set server.public_url to Cohort's https address");
            }
            let started = cohort_api::begin_woocommerce_rest_connection(
                &db,
                &org.id,
                &store_url,
                &cohort_url,
                None,
            )
            .await?;
            println!("{}\t{}", started.installation_id, started.expires_at);
            println!("{}", started.authorize_url);
        }
        StoreCommand::Sync { installation, org } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            match db.request_sync(&org.id, &installation).await? {
                Some((id, true)) => println!("{id}\tqueued"),
                Some((id, false)) => println!("{id}\talready waiting for the store"),
                None => anyhow::bail!(
                    "no connected WooCommerce installation {installation} in {}",
                    org.name
                ),
            }
        }
        StoreCommand::Runs { installation, org } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            if !db
                .list_installations(&org.id)
                .await?
                .iter()
                .any(|s| s.installation.id == installation)
            {
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
                    .map(|(resource, p)| {
                        format!(
                            "{resource} {}/{} rejected {}",
                            p.accepted, p.received, p.rejected
                        )
                    })
                    .collect();
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    run.id,
                    run.status,
                    format_rfc3339(from_micros(run.started_at)),
                    run.finished_at
                        .map(|t| format_rfc3339(from_micros(t)))
                        .unwrap_or_else(|| "-".into()),
                    progress.join(", ")
                );
            }
        }
        StoreCommand::Discount(c) => {
            crate::store_discounts::run(&db, config.outbound_policy(), c).await?
        }
    }
    Ok(())
}
