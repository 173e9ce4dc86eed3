//! `cohort mail test --to ADDRESS`: one message through the configured
//! transport (`[mail]`), rendered the way every message will be (MJML,
//! variables, text part), so that an operator sees the outbox folder or
//! the SMTP server work before a campaign depends on it.

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::config::{Config, MailTransport};

#[derive(Subcommand)]
pub enum MailCommand {
    /// Send a test message through the configured transport
    Test {
        /// Recipient address
        #[arg(long)]
        to: String,
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
    }
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
    let from_domain = mail
        .from
        .rsplit('@')
        .next()
        .map(|d| d.trim_end_matches('>').trim())
        .filter(|d| !d.is_empty())
        .unwrap_or("localhost");
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
