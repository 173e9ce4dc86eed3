//! `cohort mail test --to ADDRESS`: one message through the configured
//! transport (`[mail]`), rendered the way every message will be (MJML,
//! variables, text part), so that an operator sees the outbox folder or
//! the SMTP server work before a campaign depends on it.
//!
//! `cohort mail outbox`, `cohort mail message ID` and `cohort mail retry
//! ID`: the durable outbox on the database directly, as the API shows it.

use anyhow::{bail, Context};
use clap::Subcommand;

use cohort_domain::mail::OutboxState;
use cohort_store::mail::OutboxQuery;

use crate::commands::{open, resolve_org};
use crate::config::{Config, MailTransport};

#[derive(Subcommand)]
pub enum MailCommand {
    /// Send a test message through the configured transport
    Test {
        /// Recipient address
        #[arg(long)]
        to: String,
    },
    /// The outbox, newest first (tab-separated: id, state, recipient, attempts, created, subject, last error)
    Outbox {
        #[arg(long)]
        org: Option<String>,
        /// queued, sending, sent, bounced, dead or suppressed
        #[arg(long)]
        state: Option<String>,
        /// The exact address
        #[arg(long)]
        recipient: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One message: its state, every attempt with the server's answer, and the reports received
    Message {
        #[arg(long)]
        org: Option<String>,
        id: String,
    },
    /// Queue a dead letter again, its attempts renewed
    Retry {
        #[arg(long)]
        org: Option<String>,
        id: String,
    },
}

const TEST_SUBJECT: &str = "Cohort test message for {{ to }}";

const TEST_MJML: &str = r#"<mjml>
  <mj-head><mj-title>Cohort test message</mj-title></mj-head>
  <mj-body>
    <mj-section>
      <mj-column>
        <mj-text font-size="18px">This is a test message from Cohort.</mj-text>
        <mj-text>It went to {{ to }} through {{ transport }} at {{ sent_at }}. If you can read it, Cohort's mail works.</mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>"#;

pub async fn run(config: &Config, command: MailCommand) -> anyhow::Result<()> {
    match command {
        MailCommand::Test { to } => test(config, &to).await,
        MailCommand::Outbox {
            org,
            state,
            recipient,
            limit,
        } => {
            let db = open(config).await?;
            let org = resolve_org(&db, org.as_deref()).await?;
            let state = state
                .as_deref()
                .map(|s| {
                    s.parse::<OutboxState>().map_err(|_| {
                        anyhow::anyhow!(
                            "--state: one of queued, sending, sent, bounced, dead, suppressed"
                        )
                    })
                })
                .transpose()?;
            let recipient = recipient.map(|r| r.trim().to_lowercase());
            let rows = db
                .mail_messages_page(
                    &org.id,
                    &OutboxQuery {
                        state,
                        recipient: recipient.as_deref(),
                        limit: limit.clamp(1, 10_000),
                        ..OutboxQuery::default()
                    },
                )
                .await?;
            for m in rows {
                println!(
                    "{}\t{}\t{}\t{}/{}\t{}\t{}\t{}",
                    m.id,
                    m.state.as_str(),
                    m.recipient,
                    m.attempts,
                    m.max_attempts,
                    when(m.created_at_us),
                    m.subject,
                    m.last_error.unwrap_or_default()
                );
            }
            Ok(())
        }
        MailCommand::Message { org, id } => {
            let db = open(config).await?;
            let org = resolve_org(&db, org.as_deref()).await?;
            let Some(m) = db.mail_message(&org.id, &id).await? else {
                bail!("no message {id} in {}", org.name);
            };
            println!("id\t{}", m.id);
            println!("message-id\t<{}>", m.message_id);
            println!("state\t{}", m.state.as_str());
            println!("to\t{}", m.recipient);
            println!("from\t{}", m.from_address);
            println!("subject\t{}", m.subject);
            println!("purpose\t{}", m.purpose.as_str());
            println!("attempts\t{}/{}", m.attempts, m.max_attempts);
            if let Some(error) = &m.last_error {
                println!("last error\t{error}");
            }
            for a in db.mail_attempts(&org.id, &id).await? {
                println!(
                    "attempt {}\t{}\t{}\t{}\t{}",
                    a.attempt,
                    when(a.finished_at_us),
                    a.provider,
                    a.outcome.as_str(),
                    a.answer.unwrap_or_default()
                );
            }
            for r in db.mail_reports_of(&org.id, &id).await? {
                println!(
                    "report\t{}\t{}\t{}\t{}\t{}",
                    when(r.received_at_us),
                    r.source,
                    r.kind.as_str(),
                    r.status.unwrap_or_default(),
                    r.diagnostic.unwrap_or_default()
                );
            }
            Ok(())
        }
        MailCommand::Retry { org, id } => {
            let db = open(config).await?;
            let org = resolve_org(&db, org.as_deref()).await?;
            match db.retry_dead_mail(&org.id, &id).await {
                Ok(Some(m)) => {
                    println!("queued\t{}\t{}", m.id, m.recipient);
                    Ok(())
                }
                Ok(None) => bail!("no message {id} in {}", org.name),
                Err(cohort_store::StoreError::Invalid(why)) => bail!("{id}: {why}"),
                Err(e) => Err(e.into()),
            }
        }
    }
}

fn when(us: i64) -> String {
    cohort_domain::time::format_rfc3339(cohort_domain::time::from_micros(us))
}

async fn test(config: &Config, to: &str) -> anyhow::Result<()> {
    let mail = &config.mail;
    let transport = match mail.transport {
        MailTransport::Outbox => format!("the outbox folder {}", mail.outbox_dir),
        MailTransport::Smtp => format!("SMTP {}:{}", mail.smtp.host, mail.smtp.port),
    };
    let template = cohort_mail::compile(TEST_SUBJECT, TEST_MJML).context("the test template")?;
    let context = serde_json::json!({
        "to": to,
        "transport": transport,
        "sent_at": cohort_domain::time::format_rfc3339(chrono::Utc::now()),
    });
    let rendered = template.render(&context)?;
    let body = cohort_mail::MessageBody {
        text: cohort_mail::plain_text(&rendered.html),
        subject: rendered.subject,
        html: rendered.html,
    };
    let from_domain =
        cohort_domain::mail::address_domain(&mail.from).unwrap_or_else(|| "localhost".to_owned());
    let message_id = format!(
        "test-{}@{from_domain}",
        cohort_domain::ids::random_token(16).to_ascii_lowercase()
    );
    let wire = cohort_mail::build(
        &cohort_mail::Envelope {
            from: mail.from.clone(),
            to: to.to_owned(),
            return_path: None,
            message_id: message_id.clone(),
            unsubscribe: None,
            date: std::time::SystemTime::now(),
        },
        &body,
        None,
    )?;
    match mail.transport {
        MailTransport::Outbox => {
            let folder = cohort_mail::OutboxFolder::open(&mail.outbox_dir)
                .with_context(|| format!("cannot create the outbox folder {}", mail.outbox_dir))?;
            let id = message_id.clone();
            let delivered = tokio::task::spawn_blocking(move || folder.deliver(&id, &wire))
                .await?
                .context("cannot write to the outbox folder")?;
            let path = match delivered {
                cohort_mail::FolderDelivery::Written(p)
                | cohort_mail::FolderDelivery::AlreadyThere(p) => p,
            };
            println!("written to {} (Message-ID <{message_id}>)", path.display());
        }
        MailTransport::Smtp => {
            if mail.smtp.host.trim().is_empty() {
                bail!("[mail] transport is \"smtp\" but [mail.smtp] host is empty");
            }
            let sender = cohort_mail::SmtpSender::new(&mail.smtp.settings())?;
            match sender.send(&wire).await {
                cohort_mail::SmtpOutcome::Accepted { answer } => {
                    println!("accepted by {transport}: {answer} (Message-ID <{message_id}>)")
                }
                cohort_mail::SmtpOutcome::Throttled { answer } => {
                    bail!("{transport} asks to slow down (throttled): {answer}")
                }
                cohort_mail::SmtpOutcome::Temporary { answer } => {
                    bail!("{transport} failed for now (temporary): {answer}")
                }
                cohort_mail::SmtpOutcome::Permanent { answer } => {
                    bail!("{transport} refused the message (permanent): {answer}")
                }
            }
        }
    }
    Ok(())
}
