//! `cohort installations list`: the stores connected through the plugin,
//! with their health, versions, last heartbeat and last command.

use clap::Subcommand;
use cohort_domain::connect::{Health, InstallationStatus};
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_store::now_micros;

use crate::commands::{open, resolve_org};
use crate::config::Config;

#[derive(Subcommand)]
pub enum InstallationsCommand {
    /// List an organisation's installations, newest first (tab-separated:
    /// id, status, health, platform, plugin/WordPress/WooCommerce/PHP
    /// versions, last heartbeat, last command, store URL, site name)
    List {
        #[arg(long)]
        org: Option<String>,
    },
}

pub async fn run(config: &Config, command: InstallationsCommand) -> anyhow::Result<()> {
    let db = open(config).await?;
    match command {
        InstallationsCommand::List { org } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let now = now_micros();
            let installations = db.list_installations(&org.id).await?;
            if installations.is_empty() {
                eprintln!("no installation in {}: connect a store from its WordPress admin (Cohort → Connect)", org.name);
            }
            for s in installations {
                let i = &s.installation;
                let health = if i.status == InstallationStatus::Connected {
                    Health::at(i.last_heartbeat_at, now).as_str()
                } else {
                    "-"
                };
                let versions = format!(
                    "plugin {} / wp {} / wc {} / php {}",
                    i.plugin_version,
                    i.wp_version,
                    i.wc_version.as_deref().unwrap_or("-"),
                    i.php_version
                );
                let heartbeat = i
                    .last_heartbeat_at
                    .map(|t| format_rfc3339(from_micros(t)))
                    .unwrap_or_else(|| "never".into());
                let command = s
                    .last_command
                    .as_ref()
                    .map(|c| format!("{} {}", c.kind, c.status))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    i.id,
                    i.status,
                    health,
                    i.platform,
                    versions,
                    heartbeat,
                    command,
                    i.store_url,
                    i.site_name
                );
            }
        }
    }
    Ok(())
}
