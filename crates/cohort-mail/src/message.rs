//! A recipient's message as it goes on the wire: MIME
//! `multipart/alternative` (text, then HTML), a `Message-ID` fixed before
//! the first attempt (a retry after a crash sends the same one), for
//! marketing mail `List-Unsubscribe` with the HTTPS one-click and mailto
//! addresses and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`
//! (RFC 8058), and a DKIM signature over those headers with the sending
//! domain's key.

use std::time::SystemTime;

use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::Address;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::EncodePublicKey;

use crate::MessageBody;

/// RFC 8058's one-click unsubscribe addresses of a marketing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// The HTTPS URL a `POST` with `List-Unsubscribe=One-Click` unsubscribes at.
    pub https: String,
    /// A `mailto:` address for clients that only mail.
    pub mailto: String,
}

/// Who a message is from and to, and what identifies it.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// `"Blue Mugs" <news@bluemugs.example>` or a bare address.
    pub from: String,
    pub to: String,
    /// The SMTP `MAIL FROM` (a VERP address mapping bounces to this
    /// message); `None`: the From address.
    pub return_path: Option<String>,
    /// Without angle brackets: `msg_01H…@bluemugs.example`.
    pub message_id: String,
    /// Marketing mail carries it; transactional mail does not.
    pub unsubscribe: Option<Unsubscribe>,
    pub date: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("{field}: {message}")]
    Address {
        field: &'static str,
        message: String,
    },
    #[error("the message could not be built: {0}")]
    Build(String),
    #[error("DKIM key: {0}")]
    DkimKey(String),
}

/// A built message: the bytes to send and the SMTP envelope.
#[derive(Debug, Clone)]
pub struct WireMessage {
    pub mail_from: String,
    pub rcpt_to: String,
    pub bytes: Vec<u8>,
}

/// A sending domain's DKIM key (RSA 2048), which Cohort generates.
#[derive(Clone)]
pub struct DkimKey {
    pub domain: String,
    pub selector: String,
    /// PKCS#1 PEM: a secret, stored encrypted.
    private_pem: String,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKey")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("private_pem", &"[redacted]")
            .finish()
    }
}

impl DkimKey {
    /// A new key for `domain`.
    pub fn generate(domain: &str, selector: &str) -> Result<Self, MessageError> {
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048)
            .map_err(|e| MessageError::DkimKey(e.to_string()))?;
        let pem = key
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .map_err(|e| MessageError::DkimKey(e.to_string()))?;
        Self::from_pem(domain, selector, pem.to_string())
    }

    /// A stored key.
    pub fn from_pem(
        domain: &str,
        selector: &str,
        private_pem: String,
    ) -> Result<Self, MessageError> {
        DkimSigningKey::new(&private_pem, DkimSigningAlgorithm::Rsa)
            .map_err(|e| MessageError::DkimKey(e.to_string()))?;
        Ok(Self {
            domain: domain.to_ascii_lowercase(),
            selector: selector.to_owned(),
            private_pem,
        })
    }

    pub fn private_pem(&self) -> &str {
        &self.private_pem
    }

    /// Where the public key is published: `{selector}._domainkey.{domain}`.
    pub fn record_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// The TXT record to publish: `v=DKIM1; k=rsa; p=…`.
    pub fn record_value(&self) -> Result<String, MessageError> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        let key = rsa::RsaPrivateKey::from_pkcs1_pem(&self.private_pem)
            .map_err(|e| MessageError::DkimKey(e.to_string()))?;
        let der = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| MessageError::DkimKey(e.to_string()))?;
        use base64::Engine;
        Ok(format!(
            "v=DKIM1; k=rsa; p={}",
            base64::engine::general_purpose::STANDARD.encode(der.as_bytes())
        ))
    }

    fn config(&self) -> Result<DkimConfig, MessageError> {
        let key = DkimSigningKey::new(&self.private_pem, DkimSigningAlgorithm::Rsa)
            .map_err(|e| MessageError::DkimKey(e.to_string()))?;
        // RFC 8058 § 4: the signature must cover both List-Unsubscribe
        // headers. Not `Content-Type`: lettre writes a multipart's with the
        // body, after signing, so a signature naming it never verifies.
        let headers = [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "MIME-Version",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
        ]
        .into_iter()
        .map(HeaderName::new_from_ascii_str)
        .collect();
        Ok(DkimConfig::new(
            self.selector.clone(),
            self.domain.clone(),
            key,
            headers,
            DkimCanonicalization {
                header: DkimCanonicalizationType::Relaxed,
                body: DkimCanonicalizationType::Relaxed,
            },
        ))
    }
}

fn mailbox(field: &'static str, value: &str) -> Result<Mailbox, MessageError> {
    value
        .parse()
        .map_err(|e: lettre::address::AddressError| MessageError::Address {
            field,
            message: e.to_string(),
        })
}

/// Builds (and with `dkim`, signs) one message.
pub fn build(
    envelope: &Envelope,
    body: &MessageBody,
    dkim: Option<&DkimKey>,
) -> Result<WireMessage, MessageError> {
    let from = mailbox("from", &envelope.from)?;
    let to = mailbox("to", &envelope.to)?;
    let mail_from: Address = match &envelope.return_path {
        Some(path) => {
            path.parse()
                .map_err(|e: lettre::address::AddressError| MessageError::Address {
                    field: "return_path",
                    message: e.to_string(),
                })?
        }
        None => from.email.clone(),
    };
    if envelope.message_id.contains(['<', '>', ' ', '\r', '\n'])
        || !envelope.message_id.contains('@')
    {
        return Err(MessageError::Address {
            field: "message_id",
            message: "a Message-ID is local@domain, without brackets or spaces".into(),
        });
    }
    let mut builder = lettre::Message::builder()
        .from(from)
        .to(to.clone())
        .subject(body.subject.clone())
        .date(envelope.date)
        .message_id(Some(format!("<{}>", envelope.message_id)));
    if let Some(unsubscribe) = &envelope.unsubscribe {
        for value in [&unsubscribe.https, &unsubscribe.mailto] {
            if value.contains(['<', '>', ',', ' ', '\r', '\n']) {
                return Err(MessageError::Address {
                    field: "unsubscribe",
                    message: format!("not a bare URL: {value:?}"),
                });
            }
        }
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{}>, <{}>", unsubscribe.https, unsubscribe.mailto),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".into(),
            ));
    }
    let mut message = builder
        .multipart(MultiPart::alternative_plain_html(
            body.text.clone(),
            body.html.clone(),
        ))
        .map_err(|e| MessageError::Build(e.to_string()))?;
    if let Some(key) = dkim {
        message.sign(&key.config()?);
    }
    Ok(WireMessage {
        mail_from: mail_from.to_string(),
        rcpt_to: to.email.to_string(),
        bytes: message.formatted(),
    })
}
