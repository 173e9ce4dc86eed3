//! `cohort destination …`: destinations and their delivery log, on the
//! database directly (the same checks and masking as the admin API).

use std::io::Read;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_engine::destinations::log_filter::DeliveryQuery;
use cohort_engine::destinations::manage::{self, Input, Patch};
use cohort_engine::destinations::{Dispatcher, DispatcherOptions};
use cohort_store::destinations::{DeliveryFilter, DeliveryStatus, Destination, SecretsKey};
use cohort_store::{now_micros, Db, StoreError};
use serde_json::Value;

use crate::commands::{open, resolve_org};
use crate::config::Config;

/// The worker's options from `[destinations]` (also used by `cohort serve`).
pub fn options(config: &Config) -> DispatcherOptions {
    let d = &config.destinations;
    DispatcherOptions {
        poll: Duration::from_millis(d.poll_interval_ms.max(1)),
        allow_private_addresses: d.allow_private_addresses,
        concurrency: d.concurrency.max(1),
        per_destination: d.per_destination_concurrency.max(1),
        timeout: Duration::from_secs(d.timeout_seconds.max(1)),
        lease: Duration::from_secs(d.lease_seconds),
        schedule: d
            .retry_schedule_seconds
            .iter()
            .map(|s| Duration::from_secs(*s))
            .collect(),
        // The transaction-id fallback reads profiles: only with the projection.
        profile_fallback: config.projection.enabled,
        ..DispatcherOptions::default()
    }
}

#[derive(Subcommand)]
pub enum DestinationCommand {
    /// List destinations (tab-separated: id, type, enabled/paused, name, events filter)
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Print a destination as JSON, secrets masked
    Show {
        #[arg(long)]
        org: Option<String>,
        id: String,
    },
    /// Create a destination; a generated webhook signing secret is printed once
    Create {
        #[arg(long)]
        org: Option<String>,
        /// everflow or webhook
        #[arg(long = "type")]
        kind: String,
        #[arg(long)]
        name: Option<String>,
        /// Settings as JSON, e.g. '{"url":"https://example.com/hook"}'
        #[arg(long)]
        settings: String,
        /// Filters as JSON: '{"events":["Order Completed"],"types":["track"]}'
        #[arg(long)]
        filters: Option<String>,
        /// Read secrets as JSON from standard input ('{"verification_token":"…"}'),
        /// so they stay out of the shell history and the process list
        #[arg(long)]
        secrets_stdin: bool,
        /// Create it paused
        #[arg(long)]
        paused: bool,
    },
    /// Edit a destination (only what is given changes)
    Update {
        #[arg(long)]
        org: Option<String>,
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// Settings keys to replace, as JSON
        #[arg(long)]
        settings: Option<String>,
        /// New filters as JSON ('null' restores the default)
        #[arg(long)]
        filters: Option<String>,
        /// Read secrets to replace as JSON from standard input
        #[arg(long)]
        secrets_stdin: bool,
    },
    /// Stop sending; events arriving meanwhile are delivered once resumed
    Pause {
        #[arg(long)]
        org: Option<String>,
        id: String,
    },
    /// Send again
    Resume {
        #[arg(long)]
        org: Option<String>,
        id: String,
    },
    /// Delete a destination and its delivery log
    Delete {
        #[arg(long)]
        org: Option<String>,
        id: String,
    },
    /// Rotate a webhook's signing secret (the old one keeps signing for --grace-hours)
    RotateSecret {
        #[arg(long)]
        org: Option<String>,
        id: String,
        #[arg(long, default_value_t = 24)]
        grace_hours: u32,
    },
    /// The delivery log, newest first (tab-separated: messageId, event,
    /// outcome, attempts, HTTP status, updated, request)
    Deliveries {
        #[arg(long)]
        org: Option<String>,
        id: String,
        /// pending, retrying, delivered, failed or skipped
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        event: Option<String>,
        #[arg(long)]
        message_id: Option<String>,
        /// Text in the message id, event, request, response or reason
        #[arg(long)]
        search: Option<String>,
        /// RFC 3339
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print one delivery in full (JSON)
        #[arg(long)]
        json: bool,
    },
    /// Replay one failed delivery, or every failed one (--all-failed, with
    /// optional --event / --search)
    Replay {
        #[arg(long)]
        org: Option<String>,
        id: String,
        /// The messageId of the delivery to replay
        message_id: Option<String>,
        #[arg(long, conflicts_with = "message_id")]
        all_failed: bool,
        #[arg(long, requires = "all_failed")]
        event: Option<String>,
        #[arg(long, requires = "all_failed")]
        search: Option<String>,
    },
    /// Send a test conversion and print the exact request (masked) and the answer
    Test {
        #[arg(long)]
        org: Option<String>,
        id: String,
        /// The event with this messageId from the log (default: the last matching one)
        #[arg(long)]
        message_id: Option<String>,
        /// A sample event as JSON
        #[arg(long, conflicts_with = "message_id")]
        event: Option<String>,
    },
}

fn json_arg(name: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("--{name} is not valid JSON"))
}

fn secrets_from_stdin() -> anyhow::Result<Value> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read secrets from standard input")?;
    json_arg("secrets-stdin", &text)
}

fn time(us: i64) -> String {
    format_rfc3339(from_micros(us))
}

async fn load(
    db: &Db,
    org: &cohort_domain::ids::OrgId,
    key: &SecretsKey,
    id: &str,
) -> anyhow::Result<Destination> {
    match db.get_destination(org, key, id).await {
        Err(StoreError::NotFound(_)) => anyhow::bail!("destination {id} not found"),
        other => Ok(other?),
    }
}

fn print_view(d: &Destination) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&manage::view(d, now_micros()))?
    );
    Ok(())
}

pub async fn run(config: &Config, command: DestinationCommand) -> anyhow::Result<()> {
    let db = open(config).await?;
    let key = config.destinations_key()?;
    let allow_private = config.destinations.allow_private_addresses;
    match command {
        DestinationCommand::List { org } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let all = db.list_destinations(&org.id, &key).await?;
            if all.is_empty() {
                eprintln!(
                    "no destination in {}: create one with `cohort destination create`",
                    org.name
                );
            }
            for d in all {
                let state = if d.enabled { "enabled" } else { "paused" };
                let events = if d.filters.events.is_empty() {
                    "*".to_owned()
                } else {
                    d.filters.events.join(",")
                };
                println!("{}\t{}\t{}\t{}\t{}", d.id, d.kind, state, d.name, events);
            }
        }
        DestinationCommand::Show { org, id } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            print_view(&load(&db, &org.id, &key, &id).await?)?;
        }
        DestinationCommand::Create {
            org,
            kind,
            name,
            settings,
            filters,
            secrets_stdin,
            paused,
        } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let input = Input {
                kind,
                name,
                enabled: Some(!paused),
                filters: filters.map(|f| json_arg("filters", &f)).transpose()?,
                settings: json_arg("settings", &settings)?,
                secrets: secrets_stdin.then(secrets_from_stdin).transpose()?,
            };
            let prepared = manage::prepare(input, allow_private).await?;
            let created = db.create_destination(&org.id, &key, &prepared.new).await?;
            eprintln!("destination {} created in {}", created.id, org.name);
            if let Some(secret) = prepared.generated_secret {
                eprintln!("signing secret (shown only now; configure your receiver with it):");
                eprintln!("{secret}");
            }
            print_view(&created)?;
        }
        DestinationCommand::Update {
            org,
            id,
            name,
            settings,
            filters,
            secrets_stdin,
        } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let mut d = load(&db, &org.id, &key, &id).await?;
            let patch = Patch {
                name,
                enabled: None,
                filters: filters.map(|f| json_arg("filters", &f)).transpose()?,
                settings: settings.map(|s| json_arg("settings", &s)).transpose()?,
                secrets: secrets_stdin.then(secrets_from_stdin).transpose()?,
            };
            manage::apply(&mut d, patch, allow_private).await?;
            print_view(&db.update_destination(&key, &d).await?)?;
        }
        DestinationCommand::Pause { org, id } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let mut d = load(&db, &org.id, &key, &id).await?;
            d.enabled = false;
            db.update_destination(&key, &d).await?;
            println!("destination {id} paused");
        }
        DestinationCommand::Resume { org, id } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let mut d = load(&db, &org.id, &key, &id).await?;
            d.enabled = true;
            db.update_destination(&key, &d).await?;
            println!("destination {id} resumed");
        }
        DestinationCommand::Delete { org, id } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            match db.delete_destination(&org.id, &id).await {
                Err(StoreError::NotFound(_)) => anyhow::bail!("destination {id} not found"),
                other => other?,
            }
            println!("destination {id} deleted");
        }
        DestinationCommand::RotateSecret {
            org,
            id,
            grace_hours,
        } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            anyhow::ensure!(grace_hours <= 720, "--grace-hours must be at most 720");
            let mut d = load(&db, &org.id, &key, &id).await?;
            let secret =
                manage::rotate(&mut d, i64::from(grace_hours) * 3_600_000_000, now_micros())?;
            db.update_destination(&key, &d).await?;
            eprintln!("new signing secret (shown only now); the old one keeps signing for {grace_hours} h:");
            println!("{secret}");
        }
        DestinationCommand::Deliveries {
            org,
            id,
            status,
            event,
            message_id,
            search,
            since,
            until,
            limit,
            json,
        } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            load(&db, &org.id, &key, &id).await?;
            let query = DeliveryQuery {
                status,
                event,
                message_id,
                search,
                since,
                until,
                before: None,
                limit: limit.clamp(1, 1000),
            };
            let filter = query
                .filter()
                .map_err(|e| anyhow::anyhow!("--{} must be {}", e.field, e.message))?;
            for d in db.list_deliveries(&org.id, &id, &filter).await? {
                if json {
                    let row = serde_json::json!({
                        "message_id": d.message_id, "event": d.event, "status": d.status.as_str(), "attempts": d.attempts,
                        "request": d.request, "response_status": d.response_status, "response_excerpt": d.response_excerpt,
                        "reason": d.reason, "created_at": time(d.created_at_us), "updated_at": time(d.updated_at_us),
                    });
                    println!("{row}");
                    continue;
                }
                let outcome = match (&d.status, &d.reason) {
                    (DeliveryStatus::Skipped, Some(r)) => r.clone(),
                    (s, _) => s.as_str().to_owned(),
                };
                let request_line = d
                    .request
                    .as_deref()
                    .and_then(|r| r.lines().next())
                    .unwrap_or("-")
                    .to_owned();
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    d.message_id,
                    d.event.as_deref().unwrap_or("-"),
                    outcome,
                    d.attempts,
                    d.response_status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    time(d.updated_at_us),
                    request_line
                );
            }
        }
        DestinationCommand::Replay {
            org,
            id,
            message_id,
            all_failed,
            event,
            search,
        } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            load(&db, &org.id, &key, &id).await?;
            match (message_id, all_failed) {
                (Some(message_id), _) => {
                    let replayed = match db.replay_delivery(&org.id, &id, &message_id).await {
                        Err(StoreError::NotFound(_)) => {
                            anyhow::bail!("no delivery of {message_id} to {id}")
                        }
                        other => other?,
                    };
                    if replayed {
                        println!("delivery {message_id} queued again");
                    } else {
                        let d = db.get_delivery(&org.id, &id, &message_id).await?;
                        anyhow::bail!("delivery {message_id} is {}, not failed: only failed deliveries are replayed", d.status.as_str());
                    }
                }
                (None, true) => {
                    let filter = DeliveryFilter {
                        event,
                        search,
                        ..Default::default()
                    };
                    let n = db.replay_failed(&org.id, &id, &filter).await?;
                    println!("{n} failed deliveries queued again");
                }
                (None, false) => anyhow::bail!("give a messageId, or --all-failed"),
            }
        }
        DestinationCommand::Test {
            org,
            id,
            message_id,
            event,
        } => {
            let org = resolve_org(&db, org.as_deref()).await?;
            let d = load(&db, &org.id, &key, &id).await?;
            let given = event.map(|e| json_arg("event", &e)).transpose()?;
            anyhow::ensure!(
                given.as_ref().is_none_or(Value::is_object),
                "--event must be a JSON object"
            );
            let dispatcher = Dispatcher::new(db.clone(), key.clone(), options(config))?;
            let event = dispatcher
                .test_event(&org.id, &d, given, message_id.as_deref())
                .await?
                .context("no event with this messageId in the log")?;
            let outcome = dispatcher.test_conversion(&org.id, &d, &event).await?;
            let shown = serde_json::json!({
                "event_source": event.source,
                "message_id": event.message.get("messageId"),
                "outcome": outcome.outcome,
                "request": outcome.request,
                "response_status": outcome.response_status,
                "response_excerpt": outcome.response_excerpt,
                "reason": outcome.reason,
            });
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
    }
    Ok(())
}
