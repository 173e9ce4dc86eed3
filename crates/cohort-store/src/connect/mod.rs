//! Connect (`../shared/spec/connect.md` §1–2): pairing requests from store
//! plugins (`pairing`), and the installations they become with the commands
//! Cohort queues for them (`installations`). The authorize page's browser
//! sessions are `crate::sessions`.
//!
//! Poll secrets and installation tokens are stored as SHA-256 digests and
//! verified in constant time. The signing secret is stored as is: Cohort
//! must read it to sign its own requests to the store (connect.md §5).
//! Encrypting it at rest is a later issue.

mod installations;
mod pairing;

pub(crate) use installations::{queue_command, replace_store_installations, store_source};
pub use installations::{
    Ack, Command, Heartbeat, Installation, InstallationSummary, INSTALLATION_TOKEN_KIND,
};
pub use pairing::{
    new_user_code, ClaimedInstallation, DecisionOutcome, NewPairing, Pairing, PollOutcome,
    PAIRING_LIFETIME_MICROS, POLL_SECRET_KIND,
};
