//! `cohort events tail`: the newest events as JSON lines, and with
//! `--follow` every event as it is committed.

use std::time::Duration;

use clap::Subcommand;
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_store::events::{EventQuery, StoredEvent};

use crate::commands::open;
use crate::config::Config;

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Print the last events (one JSON object per line), then follow with -f
    Tail {
        /// Organisation id or name (default: every organisation)
        #[arg(long)]
        org: Option<String>,
        /// How many past events to print first
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: u32,
        /// Keep printing new events as they arrive
        #[arg(short, long)]
        follow: bool,
        /// Only this message type
        #[arg(long = "type")]
        message_type: Option<String>,
        /// Only track calls with this event name
        #[arg(long)]
        event: Option<String>,
    },
}

pub async fn run(config: &Config, command: EventsCommand) -> anyhow::Result<()> {
    let EventsCommand::Tail {
        org,
        lines,
        follow,
        message_type,
        event,
    } = command;
    let db = open(config).await?;
    let orgs = match org {
        Some(org) => vec![db.find_organisation(&org).await?],
        None => db.list_organisations().await?,
    };
    let filter = EventQuery {
        message_type,
        event,
        ..Default::default()
    };
    // Per organisation: the last seq printed.
    let mut cursors = Vec::new();
    for org in &orgs {
        let mut newest = db
            .query_events(
                &org.id,
                &EventQuery {
                    newest_first: true,
                    limit: lines.max(1),
                    ..filter.clone()
                },
            )
            .await?;
        let cursor = newest.first().map(|e| e.seq).unwrap_or(0);
        if lines > 0 {
            newest.reverse();
            for e in &newest {
                print_event(&org.id, e);
            }
        }
        cursors.push(cursor);
    }
    if !follow {
        return Ok(());
    }
    loop {
        for (org, cursor) in orgs.iter().zip(cursors.iter_mut()) {
            let new = db
                .query_events(
                    &org.id,
                    &EventQuery {
                        after_seq: Some(*cursor),
                        limit: 1000,
                        ..filter.clone()
                    },
                )
                .await?;
            for e in &new {
                print_event(&org.id, e);
                *cursor = e.seq;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn print_event(org: &cohort_domain::ids::OrgId, e: &StoredEvent) {
    let message: serde_json::Value = serde_json::from_str(&e.payload).unwrap_or_default();
    let line = serde_json::json!({
        "seq": e.seq,
        "org_id": org,
        "source_id": e.source_id,
        "type": e.message_type,
        "event": e.event,
        "message_id": e.message_id,
        "user_id": e.user_id,
        "anonymous_id": e.anonymous_id,
        "timestamp": format_rfc3339(from_micros(e.timestamp_us)),
        "received_at": format_rfc3339(from_micros(e.received_at_us)),
        "message": message,
    });
    println!("{line}");
}
