//! `cohort profile …` (show, export, erase) and `cohort reproject`.

use clap::Subcommand;
use cohort_domain::profile::Identity;
use cohort_store::projection::Projector;

use crate::commands::{open, resolve_org};
use crate::config::Config;

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Print a profile as JSON (by profile id, or --email / --user-id / --anonymous-id)
    Show(Selector),
    /// Print everything held about a person as one JSON document
    Export(Selector),
    /// Erase a person: profile, identities, orders and the personal data of their events
    Erase(Selector),
}

#[derive(clap::Args)]
pub struct Selector {
    #[arg(long)]
    org: Option<String>,
    /// A profile id (prof_…)
    id: Option<String>,
    #[arg(long, conflicts_with_all = ["id", "user_id", "anonymous_id"])]
    email: Option<String>,
    #[arg(long, conflicts_with_all = ["id", "anonymous_id"])]
    user_id: Option<String>,
    #[arg(long, conflicts_with = "id")]
    anonymous_id: Option<String>,
}

pub async fn profile(config: &Config, command: ProfileCommand) -> anyhow::Result<()> {
    let db = open(config).await?;
    let selector = match &command {
        ProfileCommand::Show(s) | ProfileCommand::Export(s) | ProfileCommand::Erase(s) => s,
    };
    let org = resolve_org(&db, selector.org.as_deref()).await?;
    let identity = match (&selector.email, &selector.user_id, &selector.anonymous_id) {
        (Some(e), _, _) => Some(Identity::email(&e.trim().to_lowercase())),
        (_, Some(u), _) => Some(Identity::user(u)),
        (_, _, Some(a)) => Some(Identity::anonymous(a)),
        _ => None,
    };
    let id = match (identity, &selector.id) {
        (Some(identity), _) => db
            .profile_id_of(&org.id, &identity)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no profile has {}", identity.key()))?,
        (None, Some(id)) => id.clone(),
        (None, None) => anyhow::bail!("give a profile id, or --email, --user-id or --anonymous-id"),
    };
    match command {
        ProfileCommand::Show(_) => {
            let record = db
                .profile(&org.id, &id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("profile {id} not found"))?;
            println!("{}", serde_json::to_string_pretty(&record.profile)?);
        }
        ProfileCommand::Export(_) => {
            let export = db
                .export_profile(&org.id, &id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("profile {id} not found"))?;
            println!("{}", serde_json::to_string_pretty(&export)?);
        }
        ProfileCommand::Erase(_) => {
            let report = db
                .erase_profile(&org.id, &id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("profile {id} not found"))?;
            println!(
                "erased profile {} ({} identities, {} events stripped); audit record {}",
                report.profile_id, report.identities, report.events, report.erasure_id
            );
        }
    }
    Ok(())
}

/// Rebuilds every projection from the event log.
pub async fn reproject(config: &Config) -> anyhow::Result<()> {
    let db = open(config).await?;
    let projector = Projector::new(db.clone());
    let started = std::time::Instant::now();
    projector.reset().await?;
    let events = projector.catch_up().await?;
    println!(
        "reprojected {events} events in {:.1} s ({})",
        started.elapsed().as_secs_f64(),
        db.backend().as_str()
    );
    Ok(())
}
