//! Mail's tables: providers and their shared rate buckets, sending domains
//! with their DKIM keys, and the durable outbox with every attempt.

pub mod domains;
pub mod outbox;
pub mod providers;

pub use domains::SendingDomain;
pub use outbox::{AttemptResult, Enqueued, MailAttempt, NewMail, OutboxMessage, OutboxQuery};
pub use providers::{MailProvider, ProviderFields};
