//! A template version: a subject and an MJML body, both with minijinja
//! variables (`{{ profile.first_name }}`, `{% for item in cart.items %}`).
//!
//! The MJML is rendered to responsive HTML once, when the version is
//! compiled; each recipient then costs one minijinja render of that HTML.
//! Variables are strict: a name the context lacks is an error, found by
//! [`CompiledTemplate::check`] against a sample context when the template
//! is saved or previewed, with the line in the merchant's MJML, so that it
//! never first appears at send time. Values are HTML-escaped in the body
//! and kept as they are in the subject.

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

const SUBJECT: &str = "subject";
/// The merchant's MJML as a template: errors are reported in its lines.
const SOURCE: &str = "source.html";
/// The HTML mrml made of it: what each recipient's body is rendered from.
const BODY: &str = "body.html";

/// Why a template version cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The MJML does not parse or render.
    #[error("mjml: {message}")]
    Mjml { message: String },
    /// A minijinja error: bad syntax, an undefined variable, a filter
    /// that failed. `line` is 1-based in `part`'s source.
    #[error("{part}, line {line}: {message}")]
    Variables {
        part: Part,
        line: usize,
        message: String,
    },
}

/// Which part of a template an error is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Subject,
    Mjml,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Subject => "subject",
            Part::Mjml => "mjml",
        })
    }
}

/// One recipient's subject and HTML body, before link tracking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
}

/// A template version ready to render per recipient.
pub struct CompiledTemplate {
    env: Environment<'static>,
}

impl std::fmt::Debug for CompiledTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledTemplate").finish_non_exhaustive()
    }
}

fn variables_error(part: Part, e: &minijinja::Error) -> TemplateError {
    let mut message = e.kind().to_string();
    if let Some(detail) = e.detail() {
        message = format!("{message}: {detail}");
    }
    TemplateError::Variables {
        part,
        line: e.line().unwrap_or(1),
        message,
    }
}

/// Compiles a template version: the variables' syntax is checked in both
/// parts, and the MJML rendered to HTML.
pub fn compile(subject: &str, mjml: &str) -> Result<CompiledTemplate, TemplateError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    // A subject is one line: a newline would end the header.
    if subject.contains(['\r', '\n']) {
        return Err(TemplateError::Variables {
            part: Part::Subject,
            line: 1,
            message: "a subject is one line".into(),
        });
    }
    env.add_template_owned(SUBJECT, subject.to_owned())
        .map_err(|e| variables_error(Part::Subject, &e))?;
    env.add_template_owned(SOURCE, mjml.to_owned())
        .map_err(|e| variables_error(Part::Mjml, &e))?;
    let parsed = mrml::parse(mjml).map_err(|e| TemplateError::Mjml {
        message: e.to_string(),
    })?;
    let options = mrml::prelude::render::RenderOptions {
        disable_comments: true,
        ..Default::default()
    };
    let html = parsed
        .element
        .render(&options)
        .map_err(|e| TemplateError::Mjml {
            message: e.to_string(),
        })?;
    env.add_template_owned(BODY, html)
        .map_err(|e| TemplateError::Mjml {
            message: format!("the rendered HTML lost the variables' syntax: {e}"),
        })?;
    Ok(CompiledTemplate { env })
}

impl CompiledTemplate {
    /// Renders against `sample` (a profile, cart, order … as a send would
    /// give them) and reports the first error in the merchant's own lines:
    /// what save and preview answer.
    pub fn check<S: Serialize>(&self, sample: &S) -> Result<(), TemplateError> {
        let context = minijinja::Value::from_serialize(sample);
        for (name, part) in [(SUBJECT, Part::Subject), (SOURCE, Part::Mjml)] {
            self.env
                .get_template(name)
                .and_then(|t| t.render(&context))
                .map_err(|e| variables_error(part, &e))?;
        }
        self.render(sample).map(|_| ())
    }

    /// One recipient's subject and body.
    pub fn render<S: Serialize>(&self, context: &S) -> Result<Rendered, TemplateError> {
        let context = minijinja::Value::from_serialize(context);
        let subject = self
            .env
            .get_template(SUBJECT)
            .and_then(|t| t.render(&context))
            .map_err(|e| variables_error(Part::Subject, &e))?;
        let html = self
            .env
            .get_template(BODY)
            .and_then(|t| t.render(&context))
            .map_err(|e| variables_error(Part::Mjml, &e))?;
        Ok(Rendered {
            subject: subject.trim().to_owned(),
            html,
        })
    }
}
