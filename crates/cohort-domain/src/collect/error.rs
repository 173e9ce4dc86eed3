use std::fmt;

/// Why a collect request was refused. `field` names the exact place
/// (`batch[3].event`) because clients drop a 400 and never retry it: the
/// message is all the sender will ever learn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CollectError {
    pub code: CollectErrorCode,
    pub message: String,
    pub field: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectErrorCode {
    InvalidRequest,
    PayloadTooLarge,
}

impl CollectErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            CollectErrorCode::InvalidRequest => "invalid_request",
            CollectErrorCode::PayloadTooLarge => "payload_too_large",
        }
    }
}

impl fmt::Display for CollectErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl CollectError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: CollectErrorCode::InvalidRequest,
            message: message.into(),
            field: Some(field.into()).filter(|f: &String| !f.is_empty()),
        }
    }

    pub fn too_large(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: CollectErrorCode::PayloadTooLarge,
            message: message.into(),
            field: Some(field.into()).filter(|f: &String| !f.is_empty()),
        }
    }
}
