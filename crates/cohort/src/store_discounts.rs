//! `cohort store discount create|get|delete|redemptions`: discounts in a
//! connected WooCommerce store (connect.md §5), through the same signed
//! client as the admin API.

use anyhow::Context;
use clap::Subcommand;
use cohort_domain::discounts::{wire::StoreDiscount, NewDiscount};
use cohort_engine::outbound::OutboundPolicy;
use cohort_engine::store_discounts::{target_for, StoreCallError, StoreClient, STORE_TIMEOUT};
use serde_json::{json, Value};

use cohort_store::Db;

use crate::commands::resolve_org;

#[derive(Subcommand)]
pub enum DiscountCommand {
    /// Create a percentage coupon in the store; prints its id in the store
    /// and its code (tab-separated)
    Create {
        /// The installation id (`cohort installations list`)
        installation: String,
        #[arg(long)]
        code: String,
        /// Percent off, greater than 0 and at most 100 (e.g. 20 or 12.5)
        #[arg(long)]
        amount: String,
        /// Minimum order subtotal, in the store's currency
        #[arg(long)]
        min_purchase: Option<String>,
        /// Expiry, RFC 3339 (e.g. 2030-12-31T23:59:59Z)
        #[arg(long)]
        expires_at: Option<String>,
        /// Total uses allowed
        #[arg(long)]
        usage_limit: Option<u32>,
        /// Only this billing email may use it (repeatable)
        #[arg(long = "email")]
        emails: Vec<String>,
        #[arg(long)]
        org: Option<String>,
    },
    /// Print a coupon as JSON, by its id in the store or by `--code`
    Get {
        installation: String,
        /// The coupon's id in the store
        provider_id: Option<u64>,
        #[arg(long, conflicts_with = "provider_id")]
        code: Option<String>,
        #[arg(long)]
        org: Option<String>,
    },
    /// Delete a coupon from the store for good
    Delete {
        installation: String,
        provider_id: u64,
        #[arg(long)]
        org: Option<String>,
    },
    /// Orders that used a coupon since a time, oldest first (tab-separated:
    /// order id, code, customer id or -, email, amount, currency, created at);
    /// the next page's cursor goes to stderr unless --all follows every page
    Redemptions {
        installation: String,
        /// RFC 3339
        #[arg(long)]
        since: String,
        #[arg(long)]
        cursor: Option<String>,
        /// Follow the cursor to the last page
        #[arg(long)]
        all: bool,
        #[arg(long)]
        org: Option<String>,
    },
}

fn store_error(e: StoreCallError) -> anyhow::Error {
    match e {
        StoreCallError::PluginUpdateRequired(_) => {
            anyhow::anyhow!("plugin update required: the store's Cohort Connect plugin has no discount endpoints; update the plugin in WordPress")
        }
        StoreCallError::Invalid { field, message } => {
            anyhow::anyhow!(
                "{}: {message}",
                cohort_domain::discounts::admin_field(&field)
            )
        }
        other => anyhow::anyhow!(other),
    }
}

fn print_discount(d: &StoreDiscount) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(d)?);
    Ok(())
}

pub async fn run(
    db: &Db,
    outbound: OutboundPolicy,
    command: DiscountCommand,
) -> anyhow::Result<()> {
    let client = StoreClient::new(outbound, STORE_TIMEOUT).map_err(store_error)?;
    match command {
        DiscountCommand::Create {
            installation,
            code,
            amount,
            min_purchase,
            expires_at,
            usage_limit,
            emails,
            org,
        } => {
            let org = resolve_org(db, org.as_deref()).await?;
            let mut input = json!({"code": code, "kind": "percentage", "amount": amount});
            if let Some(m) = min_purchase {
                input["min_purchase_amount"] = json!(m);
            }
            if let Some(t) = expires_at {
                input["expires_at"] = json!(t);
            }
            if let Some(n) = usage_limit {
                input["usage_limit"] = json!(n);
            }
            if !emails.is_empty() {
                input["email_restrictions"] = Value::from(emails);
            }
            let discount = NewDiscount::from_json(&input, chrono::Utc::now())
                .map_err(|e| anyhow::anyhow!("--{}: {}", e.field.replace('_', "-"), e.message))?;
            let target = target_for(db, &org.id, &installation).await?;
            let created = client
                .create(&target, &discount)
                .await
                .map_err(store_error)?;
            println!("{}\t{}", created.provider_id, created.code);
        }
        DiscountCommand::Get {
            installation,
            provider_id,
            code,
            org,
        } => {
            let org = resolve_org(db, org.as_deref()).await?;
            let target = target_for(db, &org.id, &installation).await?;
            let found = match (provider_id, code) {
                (Some(id), None) => client.get(&target, id).await,
                (None, Some(code)) => client.get_by_code(&target, &code).await,
                _ => anyhow::bail!("give the coupon's id in the store, or --code"),
            };
            print_discount(&found.map_err(store_error)?)?;
        }
        DiscountCommand::Delete {
            installation,
            provider_id,
            org,
        } => {
            let org = resolve_org(db, org.as_deref()).await?;
            let target = target_for(db, &org.id, &installation).await?;
            let deleted = client
                .delete(&target, provider_id)
                .await
                .map_err(store_error)?;
            println!("{}\tdeleted", deleted.provider_id);
        }
        DiscountCommand::Redemptions {
            installation,
            since,
            cursor,
            all,
            org,
        } => {
            cohort_domain::time::parse_rfc3339(&since)
                .context("--since must be an RFC 3339 time, e.g. 2026-01-01T00:00:00Z")?;
            let org = resolve_org(db, org.as_deref()).await?;
            let target = target_for(db, &org.id, &installation).await?;
            let mut cursor = cursor;
            loop {
                let page = client
                    .redemptions(&target, &since, cursor.as_deref())
                    .await
                    .map_err(store_error)?;
                for r in &page.redemptions {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        r.provider_order_id,
                        r.code,
                        r.customer_id.as_deref().unwrap_or("-"),
                        r.email.as_deref().unwrap_or("-"),
                        r.amount,
                        r.currency,
                        r.created_at
                    );
                }
                match (page.next_cursor, all) {
                    (Some(next), true) => cursor = Some(next),
                    (Some(next), false) => {
                        eprintln!("next cursor: {next}");
                        break;
                    }
                    (None, _) => break,
                }
            }
        }
    }
    Ok(())
}
