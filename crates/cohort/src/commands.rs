//! Operator commands that act on the database directly: organisations,
//! sources, users and API tokens.

use std::io::{BufRead, IsTerminal};

use anyhow::Context;
use clap::Subcommand;
use cohort_domain::accounts::hash_password;
use cohort_store::users::Role;
use cohort_store::Db;

use crate::config::Config;

/// Opens the configured database and applies pending migrations.
pub async fn open(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(config.database_url(), &config.db_options())
        .await
        .context("cannot open the database")?;
    db.migrate().await.context("cannot apply migrations")?;
    Ok(db)
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organisation
    Create {
        #[arg(long)]
        name: String,
    },
    /// List organisations
    List,
}

#[derive(Subcommand)]
pub enum SourceCommand {
    /// Create a source and print its write key
    Create {
        /// Organisation id or name (default: the only organisation)
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        name: String,
    },
    /// List the sources of an organisation with their write keys
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Refuse the source's write key from now on (401)
    Disable {
        #[arg(long)]
        org: Option<String>,
        /// Source id (src_…)
        id: String,
    },
    /// Accept the source's write key again
    Enable {
        #[arg(long)]
        org: Option<String>,
        id: String,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user with an argon2-hashed password. The password is read
    /// from COHORT_PASSWORD, else from standard input (one line).
    Create {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        email: String,
        /// owner, admin or viewer
        #[arg(long, default_value = "admin")]
        role: String,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it (shown this once; stored hashed)
    Create {
        #[arg(long)]
        org: Option<String>,
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List an organisation's tokens (never their secrets)
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Revoke a token by its id
    Revoke {
        #[arg(long)]
        org: Option<String>,
        id: String,
    },
}

/// The organisation named by `--org`, or the only one when there is one.
pub async fn resolve_org(
    db: &Db,
    org: Option<&str>,
) -> anyhow::Result<cohort_store::orgs::Organisation> {
    if let Some(org) = org {
        return Ok(db.find_organisation(org).await?);
    }
    let mut orgs = db.list_organisations().await?;
    match orgs.len() {
        0 => anyhow::bail!(
            "there is no organisation yet: run `cohort serve` once or `cohort org create`"
        ),
        1 => Ok(orgs.remove(0)),
        _ => anyhow::bail!("there are several organisations: name one with --org"),
    }
}

pub async fn org(config: &Config, command: OrgCommand) -> anyhow::Result<()> {
    let db = open(config).await?;
    match command {
        OrgCommand::Create { name } => {
            let org = db.create_organisation(&name).await?;
            println!("{}\t{}", org.id, org.name);
        }
        OrgCommand::List => {
            for org in db.list_organisations().await? {
                println!("{}\t{}", org.id, org.name);
            }
        }
    }
    Ok(())
}

pub async fn source(config: &Config, command: SourceCommand) -> anyhow::Result<()> {
    let db = open(config).await?;
    match command {
        SourceCommand::Create { org, name } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let source = db.create_source(&org.id, &name).await?;
            println!("source {} created in {}", source.id, org.name);
            println!("write key: {}", source.write_key);
        }
        SourceCommand::List { org } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            for s in db.list_sources(&org.id).await? {
                let state = if s.enabled { "enabled" } else { "disabled" };
                println!("{}\t{}\t{}\t{}", s.id, s.write_key, state, s.name);
            }
        }
        SourceCommand::Disable { org, id } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            db.set_source_enabled(&org.id, &id, false).await?;
            println!("source {id} disabled");
        }
        SourceCommand::Enable { org, id } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            db.set_source_enabled(&org.id, &id, true).await?;
            println!("source {id} enabled");
        }
    }
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("COHORT_PASSWORD") {
        return Ok(password);
    }
    if std::io::stdin().is_terminal() {
        eprint!("password: ");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub async fn user(config: &Config, command: UserCommand) -> anyhow::Result<()> {
    let db = open(config).await?;
    match command {
        UserCommand::Create { org, email, role } => {
            let role = Role::parse(&role)
                .with_context(|| format!("role must be owner, admin or viewer, not {role:?}"))?;
            let org = resolve_org(&db, org.as_deref()).await?;
            let password = read_password()?;
            let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
            let user = db.create_user(&org.id, &email, &hash, role).await?;
            println!(
                "user {} ({}) is {} of {}",
                user.id,
                user.email,
                role.as_str(),
                org.name
            );
        }
    }
    Ok(())
}

pub async fn token(config: &Config, command: TokenCommand) -> anyhow::Result<()> {
    let db = open(config).await?;
    match command {
        TokenCommand::Create { org, name } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let (info, secret) = db.create_api_token(&org.id, &name).await?;
            eprintln!(
                "token {} created for {}; it is shown only now:",
                info.id, org.name
            );
            println!("{}", secret.reveal());
        }
        TokenCommand::List { org } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            for t in db.list_api_tokens(&org.id).await? {
                let state = if t.revoked { "revoked" } else { "active" };
                println!("{}\t{}\t{}", t.id, state, t.name);
            }
        }
        TokenCommand::Revoke { org, id } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            db.revoke_api_token(&org.id, &id).await?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}
