//! The Segment-compatible message model: what a collect request may contain,
//! how it is validated, and how it becomes the normalised messages that go
//! into the event log (`../shared/spec/collect.md`).

mod error;
mod normalize;

pub use error::{CollectError, CollectErrorCode};
pub use normalize::{normalize_request, Envelope, NormalizedMessage, ParsedRequest};

use serde::{Deserialize, Serialize};

/// The six Segment message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    Identify,
    Track,
    Page,
    Screen,
    Group,
    Alias,
}

impl MessageType {
    pub const ALL: [MessageType; 6] = [
        MessageType::Identify,
        MessageType::Track,
        MessageType::Page,
        MessageType::Screen,
        MessageType::Group,
        MessageType::Alias,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Identify => "identify",
            MessageType::Track => "track",
            MessageType::Page => "page",
            MessageType::Screen => "screen",
            MessageType::Group => "group",
            MessageType::Alias => "alias",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// The one-letter path analytics.js posts to (`/v1/t` for track).
    pub fn letter(self) -> &'static str {
        &self.as_str()[..1]
    }
}

/// Size and count limits of one collect request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_request_bytes: usize,
    pub max_batch_messages: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 32 * 1024,
            max_request_bytes: 500 * 1024,
            max_batch_messages: 2500,
        }
    }
}
