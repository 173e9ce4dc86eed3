//! Cohort's mail: rendering, messages and transports. A template version is
//! compiled once ([`template::compile`]: MJML to HTML with mrml, variables
//! checked); each recipient gets one minijinja render, tracked links and an
//! open pixel ([`links::track`]) and a plain-text part
//! ([`text::plain_text`]); [`message::build`] makes the signed MIME message
//! and [`outbox_folder`] is the embedded default transport. Nothing here
//! chooses recipients or touches a table.

pub mod bounces;
pub mod inbound_smtp;
pub mod links;
pub mod message;
pub mod outbox_folder;
pub mod smtp;
mod smtp_pool;
pub mod template;
pub mod text;

pub use links::{track, LinkTracking, NO_TRACK_ATTRIBUTE};
pub use message::{build, DkimKey, Envelope, MessageError, Unsubscribe, WireMessage};
pub use outbox_folder::{FolderDelivery, OutboxFolder};
pub use smtp::{SmtpOutcome, SmtpSender, SmtpSettings, TlsMode};
pub use template::{compile, CompiledTemplate, Part, Rendered, TemplateError};
pub use text::plain_text;

/// A recipient's message body, ready for the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// Renders one recipient's message: the template with `context`, links
/// tracked, the pixel added, and the text part from the tracked HTML (so
/// its links are tracked too).
pub fn render_message<S: serde::Serialize>(
    template: &CompiledTemplate,
    context: &S,
    tracking: &LinkTracking<'_>,
) -> Result<MessageBody, RenderError> {
    let rendered = template.render(context)?;
    let html = track(&rendered.html, tracking)?;
    let text = plain_text(&html);
    Ok(MessageBody {
        subject: rendered.subject,
        html,
        text,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Links(#[from] links::RewriteError),
}
