//! Shapes of the collect API for the OpenAPI document. Requests are parsed
//! by `cohort_domain::collect`, not by these types: they only document.

use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

/// A Segment message. `userId` or `anonymousId` is required; `track` needs
/// `event`, `group` needs `groupId`, `alias` needs `previousId` and `userId`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(example = json!({"userId": "user_123", "event": "Order Completed", "properties": {"order_id": "ord_1001", "total": 27.5, "currency": "USD"}, "timestamp": "2026-11-23T00:10:51.737Z"}))]
pub struct SegmentMessage {
    /// In a batch: identify, track, page, screen, group or alias. On a
    /// single-message path the path decides.
    #[schema(rename = "type")]
    pub r#type: Option<String>,
    #[schema(rename = "userId")]
    pub user_id: Option<String>,
    #[schema(rename = "anonymousId")]
    pub anonymous_id: Option<String>,
    /// At most 100 characters; assigned by Cohort when absent. A messageId
    /// already stored for the organisation is acknowledged and not stored again.
    #[schema(rename = "messageId")]
    pub message_id: Option<String>,
    pub event: Option<String>,
    pub name: Option<String>,
    #[schema(rename = "groupId")]
    pub group_id: Option<String>,
    #[schema(rename = "previousId")]
    pub previous_id: Option<String>,
    pub properties: Option<Value>,
    pub traits: Option<Value>,
    pub context: Option<Value>,
    pub integrations: Option<Value>,
    /// When it happened on the client (RFC 3339); corrected for clock skew with `sentAt`.
    pub timestamp: Option<String>,
    #[schema(rename = "sentAt")]
    pub sent_at: Option<String>,
    #[schema(rename = "writeKey")]
    pub write_key: Option<String>,
}

/// Up to 2,500 messages (500 KB in all, 32 KB each). Batch-level `context`
/// and `integrations` merge into every message; `sentAt` applies to every
/// message that has none.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct SegmentBatch {
    pub batch: Vec<SegmentMessage>,
    pub context: Option<Value>,
    pub integrations: Option<Value>,
    #[schema(rename = "sentAt")]
    pub sent_at: Option<String>,
    #[schema(rename = "writeKey")]
    pub write_key: Option<String>,
}

/// `{"integrations":{"Segment.io":{apiKey, apiHost, protocol}}, "plan":{}, "metrics":{"sampleRate":0}}`
#[derive(Serialize, ToSchema)]
pub struct SettingsDocument {
    pub integrations: Value,
    pub plan: Value,
    pub metrics: Value,
}

pub fn settings_document(write_key: &str, api_host: &str, protocol: &str) -> SettingsDocument {
    SettingsDocument {
        integrations: json!({"Segment.io": {"apiKey": write_key, "apiHost": api_host, "protocol": protocol}}),
        plan: json!({}),
        // No client metrics: sampleRate 0 keeps analytics.js from posting them anywhere.
        metrics: json!({"sampleRate": 0}),
    }
}
