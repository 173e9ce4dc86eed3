//! Mail's tables: providers and their shared rate buckets, sending domains
//! with their DKIM keys, the durable outbox with every attempt, the bounce
//! and complaint reports received, and the webhook endpoints providers
//! send them to.

pub mod domains;
pub mod outbox;
pub mod providers;
pub mod reports;
pub mod webhooks;

pub use domains::SendingDomain;
pub use outbox::{AttemptResult, Enqueued, MailAttempt, NewMail, OutboxMessage, OutboxQuery};
pub use providers::{MailProvider, ProviderFields};
pub use reports::{MailReportRow, NewMailReport, ReportRecorded};
pub use webhooks::{MailWebhook, WebhookKind};
