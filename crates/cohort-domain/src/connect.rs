//! The states of Connect (`../shared/spec/connect.md`): pairings, the
//! installations they become, the commands Cohort queues for a store and
//! the sync runs a store sends. The API, the UI, the CLI and the workers
//! reason about these values; the store only keeps them.

use crate::text_enum;

text_enum! {
    /// Where a pairing request stands (its expiry is a time, not a status).
    pub enum PairingStatus {
        /// Waiting for the merchant's decision.
        Pending = "pending",
        /// Approved; the plugin has not collected its token yet.
        Approved = "approved",
        Denied = "denied",
        /// The plugin collected its token: the pairing is spent.
        Claimed = "claimed",
    }
}

text_enum! {
    /// Where an installation stands.
    pub enum InstallationStatus {
        /// Approved; the plugin has not collected its token yet.
        AwaitingPlugin = "awaiting_plugin",
        Connected = "connected",
        Disconnected = "disconnected",
        /// A newer installation of the same store took its place.
        Replaced = "replaced",
    }
}

text_enum! {
    /// How a store is connected.
    pub enum InstallationMode {
        /// Paired with the Cohort plugin.
        Plugin = "plugin",
        /// WooCommerce's own REST API keys and webhooks (connect.md §6).
        Rest = "rest",
    }
}

text_enum! {
    /// What a paired site runs.
    pub enum Platform {
        Woocommerce = "woocommerce",
        /// WordPress without WooCommerce (no store data to sync yet).
        Wordpress = "wordpress",
    }
}

text_enum! {
    /// What Cohort asks a store to do.
    pub enum CommandKind {
        /// Send the catalogue, customers and orders (a sync run).
        SyncStore = "sync_store",
    }
}

text_enum! {
    /// Where a queued command stands.
    pub enum CommandStatus {
        /// Queued, or handed out and not acknowledged yet.
        Pending = "pending",
        Done = "done",
        Failed = "failed",
        /// Its installation was disconnected or replaced first.
        Cancelled = "cancelled",
    }
}

text_enum! {
    /// Where a sync run stands.
    pub enum SyncRunStatus {
        Running = "running",
        Completed = "completed",
    }
}

/// How long after its last heartbeat an installation stops being healthy.
const HEALTHY_FOR_MICROS: i64 = 15 * 60 * 1_000_000;
/// How long after its last heartbeat an installation is taken for lost.
const LOST_AFTER_MICROS: i64 = 60 * 60 * 1_000_000;

text_enum! {
    /// Health of an installation from the time of its last heartbeat.
    /// Moved here from the store, which only keeps the heartbeat's time:
    /// the thresholds are a rule of Connect, not of storage.
    pub enum Health {
        /// Never heard from.
        Pending = "pending",
        /// Less than 15 minutes since the last heartbeat.
        Healthy = "healthy",
        /// Less than an hour.
        Stale = "stale",
        /// An hour or more.
        Lost = "lost",
    }
}

impl Health {
    /// The health at `now` of an installation last heard from at
    /// `last_heartbeat_at` (µs).
    pub fn at(last_heartbeat_at: Option<i64>, now: i64) -> Self {
        match last_heartbeat_at {
            None => Health::Pending,
            Some(last) if now - last < HEALTHY_FOR_MICROS => Health::Healthy,
            Some(last) if now - last < LOST_AFTER_MICROS => Health::Stale,
            Some(_) => Health::Lost,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_the_time_since_the_last_heartbeat() {
        let minute = 60 * 1_000_000;
        let now = 1_000 * minute;
        assert_eq!(Health::at(None, now), Health::Pending);
        assert_eq!(Health::at(Some(now - 14 * minute), now), Health::Healthy);
        assert_eq!(Health::at(Some(now - 15 * minute), now), Health::Stale);
        assert_eq!(Health::at(Some(now - 59 * minute), now), Health::Stale);
        assert_eq!(Health::at(Some(now - 60 * minute), now), Health::Lost);
    }

    #[test]
    fn every_value_reads_back_from_its_string_and_nothing_else_does() {
        for status in InstallationStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(*status));
            assert_eq!(
                serde_json::to_string(status).unwrap(),
                format!("\"{status}\"")
            );
        }
        let unknown = "paused".parse::<InstallationStatus>().unwrap_err();
        assert_eq!(unknown.to_string(), "unknown InstallationStatus \"paused\"");
        assert_eq!(CommandKind::SyncStore.as_str(), "sync_store");
    }
}
