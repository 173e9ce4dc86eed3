//! The optional model behind "Talk to your data": an OpenAI-compatible
//! chat-completions endpoint the operator configures (`[nl]`), typically a
//! local server running an open model. It is asked for a rule in Cohort's
//! language; whatever it answers is only a candidate, kept only when it
//! parses and names segments that exist. The offline grammar is always
//! there without it.

use std::time::Duration;

use cohort_domain::segments::language::Vocabulary;
use serde::Deserialize;
use serde_json::json;

/// How many products, categories, tags and segment names the prompt lists
/// at most: enough for the model to spell the store's names, short enough
/// for a small model's context.
const VOCABULARY_LIMIT: usize = 60;

/// The longest answer read: a rule is a few lines.
const ANSWER_MAX_BYTES: usize = 8 * 1024;

/// Where the model is and how to reach it.
#[derive(Clone)]
pub struct ModelSettings {
    /// The API base, e.g. `http://127.0.0.1:8080/v1`; the request goes to
    /// `{endpoint}/chat/completions`.
    pub endpoint: url::Url,
    pub model: String,
    /// Sent as `Authorization: Bearer …`; never logged.
    pub api_key: Option<secrecy::SecretString>,
    pub timeout: Duration,
}

impl std::fmt::Debug for ModelSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSettings")
            .field("endpoint", &self.endpoint.as_str())
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A chat-completions client for segment rules.
#[derive(Debug, Clone)]
pub struct RuleModel {
    settings: ModelSettings,
    url: url::Url,
    http: reqwest::Client,
}

/// Why the model gave no usable candidate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelFailure {
    #[error("the model could not be reached: {0}")]
    Unreachable(String),
    #[error("the model answered HTTP {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("the model's answer is not a chat completion: {0}")]
    Malformed(String),
    #[error("the model gave no answer")]
    Empty,
}

impl RuleModel {
    pub fn new(settings: ModelSettings) -> Result<Self, String> {
        let base = settings.endpoint.as_str().trim_end_matches('/').to_owned();
        let url = url::Url::parse(&format!("{base}/chat/completions"))
            .map_err(|e| format!("endpoint: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("endpoint: must be an http:// or https:// URL".into());
        }
        if settings.model.trim().is_empty() {
            return Err("model: name the model the endpoint serves".into());
        }
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            settings,
            url,
            http,
        })
    }

    pub fn model_name(&self) -> &str {
        &self.settings.model
    }

    /// Asks for one rule for `text`; the answer's text, unchecked.
    pub async fn ask(
        &self,
        text: &str,
        vocabulary: &Vocabulary,
        today: chrono::NaiveDate,
    ) -> Result<String, ModelFailure> {
        let body = json!({
            "model": self.settings.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": system_prompt(vocabulary, today)},
                {"role": "user", "content": text},
            ],
        });
        let mut request = self.http.post(self.url.clone()).json(&body);
        if let Some(key) = &self.settings.api_key {
            use secrecy::ExposeSecret;
            request = request.bearer_auth(key.expose_secret());
        }
        let response = request
            .send()
            .await
            .map_err(|e| ModelFailure::Unreachable(without_url(e)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ModelFailure::Unreachable(without_url(e)))?;
        if !status.is_success() {
            return Err(ModelFailure::Refused {
                status: status.as_u16(),
                message: error_message(&bytes),
            });
        }
        let completion: Completion =
            serde_json::from_slice(&bytes).map_err(|e| ModelFailure::Malformed(e.to_string()))?;
        let content = completion
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or(ModelFailure::Empty)?;
        let rule = rule_text(&content);
        if rule.is_empty() {
            return Err(ModelFailure::Empty);
        }
        Ok(rule)
    }
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
}

/// A transport error without the URL (which may carry credentials).
fn without_url(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        e.without_url().to_string()
    }
}

/// The `error.message` of an OpenAI-style error body, else the body's
/// start.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        message: String,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(b) => b.error.message.chars().take(300).collect(),
        Err(_) => String::from_utf8_lossy(body).chars().take(300).collect(),
    }
}

/// The rule in an answer: models wrap code in fences or say "Rule:" before
/// it however they are asked.
fn rule_text(content: &str) -> String {
    let content: String = content.chars().take(ANSWER_MAX_BYTES).collect();
    let mut text = content.trim();
    if let Some(start) = text.find("```") {
        let after = &text[start + 3..];
        // The fence's language tag, if any, ends at the first newline.
        let after = match after.find('\n') {
            Some(nl) if !after[..nl].contains(' ') => &after[nl + 1..],
            _ => after,
        };
        text = after.find("```").map_or(after, |end| &after[..end]);
    }
    let text = text.trim();
    let text = text
        .strip_prefix("Rule:")
        .or_else(|| text.strip_prefix("rule:"))
        .unwrap_or(text);
    text.trim().to_owned()
}

/// What the model is told: the language, the store's own names and today.
fn system_prompt(vocabulary: &Vocabulary, today: chrono::NaiveDate) -> String {
    fn list(names: &[String]) -> String {
        if names.is_empty() {
            return "(none)".into();
        }
        names
            .iter()
            .take(VOCABULARY_LIMIT)
            .map(|n| format!("\"{}\"", n.replace('"', "'")))
            .collect::<Vec<_>>()
            .join(", ")
    }
    let products: Vec<String> = vocabulary
        .products
        .iter()
        .take(VOCABULARY_LIMIT)
        .map(|p| match p.key() {
            Some(key) => format!("{} (bought product \"{}\")", p.name, key),
            None => p.name.clone(),
        })
        .collect();
    format!(
        "You turn a merchant's description of customers into one rule in Cohort's segment \
         language. Answer with the rule only: no explanation, no code fence.\n\
         \n\
         The language:\n\
         - traits: trait.country = \"DE\", trait.plan in [\"gold\",\"silver\"], trait.age >= 30, \
         trait.phone exists, trait.city contains \"Berl\"\n\
         - identity: email exists, subscribed, unsubscribed, bounced\n\
         - tags: tag \"vip\"\n\
         - commerce: orders.count, orders.total_spent, orders.average_value (amounts in the store's \
         currency), orders.first_at, orders.last_at, last_seen; compared with = != < <= > >=, or \
         `orders.last_at within 30 days`, `last_seen before 90 days ago`\n\
         - behaviour: performed \"Order Completed\" >= 2 times within 90 days where properties.total > 50; \
         not performed \"Email Opened\" within 30 days; last performed \"Order Completed\" before 90 days ago. \
         Events: \"Order Completed\", \"Product Viewed\", \"Product Added\", \"Checkout Started\", \
         \"Email Opened\", \"Email Link Clicked\"\n\
         - email: received email >= 10 times within 365 days, opened email within 30 days, clicked email within 7 days\n\
         - products: bought product \"SKU-123\", bought category \"Shoes\" within 1 year\n\
         - segments: in segment \"VIP\"\n\
         - RFM: rfm.group = \"At Risk\", rfm.recency >= 2\n\
         - logic: and, or, not, parentheses\n\
         Windows: within N days|weeks|months|years.\n\
         \n\
         Today is {today}. The store's currency: {currency}.\n\
         Products: {products}\n\
         Categories: {categories}\n\
         Tags: {tags}\n\
         Segments: {segments}",
        currency = vocabulary.currency.as_deref().unwrap_or("unknown"),
        products = if products.is_empty() {
            "(none)".into()
        } else {
            products.join("; ")
        },
        categories = list(&vocabulary.categories),
        tags = list(&vocabulary.tags),
        segments = list(&vocabulary.segments),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_is_taken_out_of_fences_and_labels() {
        assert_eq!(rule_text("orders.count >= 2"), "orders.count >= 2");
        assert_eq!(
            rule_text("```\norders.count >= 2\n```"),
            "orders.count >= 2"
        );
        assert_eq!(
            rule_text("Here it is:\n```cohort\ntag \"vip\"\nand subscribed\n```\nDone."),
            "tag \"vip\"\nand subscribed"
        );
        assert_eq!(rule_text("Rule: subscribed"), "subscribed");
        assert_eq!(rule_text("  \n "), "");
    }

    #[test]
    fn the_settings_never_show_the_key() {
        let settings = ModelSettings {
            endpoint: url::Url::parse("http://127.0.0.1:1/v1").unwrap(),
            model: "m".into(),
            api_key: Some("sk-very-secret".to_owned().into()),
            timeout: Duration::from_secs(1),
        };
        let shown = format!("{:?}", RuleModel::new(settings).unwrap());
        assert!(!shown.contains("sk-very-secret"), "{shown}");
    }

    #[test]
    fn a_model_needs_a_name_and_an_http_endpoint() {
        let mut settings = ModelSettings {
            endpoint: url::Url::parse("ftp://127.0.0.1/v1").unwrap(),
            model: "m".into(),
            api_key: None,
            timeout: Duration::from_secs(1),
        };
        assert!(RuleModel::new(settings.clone()).is_err());
        settings.endpoint = url::Url::parse("http://127.0.0.1/v1/").unwrap();
        settings.model = " ".into();
        assert!(RuleModel::new(settings.clone()).is_err());
        settings.model = "m".into();
        let model = RuleModel::new(settings).unwrap();
        assert_eq!(model.url.as_str(), "http://127.0.0.1/v1/chat/completions");
    }
}
