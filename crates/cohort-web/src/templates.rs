//! The templates, compiled into the binary and parsed once. HTML is
//! escaped by default; `|safe` is used only for markup Cohort builds
//! itself (the SVG chart).

use std::sync::LazyLock;

use axum::http::StatusCode;
use minijinja::{context, AutoEscape, Environment, Value};
use serde::Serialize;

use crate::{assets, format, UiError};

/// (name, source) of every template.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("bare.html", include_str!("templates/bare.html")),
    ("message.html", include_str!("templates/message.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("account.html", include_str!("templates/account.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("sources.html", include_str!("templates/sources.html")),
    ("source.html", include_str!("templates/source.html")),
    ("profiles.html", include_str!("templates/profiles.html")),
    ("profile.html", include_str!("templates/profile.html")),
    ("segments.html", include_str!("templates/segments.html")),
    ("segment.html", include_str!("templates/segment.html")),
    (
        "segment_edit.html",
        include_str!("templates/segment_edit.html"),
    ),
    ("orders.html", include_str!("templates/orders.html")),
    ("products.html", include_str!("templates/products.html")),
    ("stores.html", include_str!("templates/stores.html")),
    ("store.html", include_str!("templates/store.html")),
    (
        "store_facts.html",
        include_str!("templates/store_facts.html"),
    ),
    (
        "store_actions.html",
        include_str!("templates/store_actions.html"),
    ),
    ("store_runs.html", include_str!("templates/store_runs.html")),
    (
        "destinations.html",
        include_str!("templates/destinations.html"),
    ),
    (
        "destination_new.html",
        include_str!("templates/destination_new.html"),
    ),
    (
        "destination_fields.html",
        include_str!("templates/destination_fields.html"),
    ),
    (
        "destination.html",
        include_str!("templates/destination.html"),
    ),
    (
        "request_view.html",
        include_str!("templates/request_view.html"),
    ),
    (
        "delivery_rows.html",
        include_str!("templates/delivery_rows.html"),
    ),
    ("deliveries.html", include_str!("templates/deliveries.html")),
    ("delivery.html", include_str!("templates/delivery.html")),
    ("mail_tabs.html", include_str!("templates/mail_tabs.html")),
    (
        "mail_outbox.html",
        include_str!("templates/mail_outbox.html"),
    ),
    (
        "mail_message.html",
        include_str!("templates/mail_message.html"),
    ),
    (
        "mail_providers.html",
        include_str!("templates/mail_providers.html"),
    ),
    (
        "mail_provider.html",
        include_str!("templates/mail_provider.html"),
    ),
    (
        "mail_provider_fields.html",
        include_str!("templates/mail_provider_fields.html"),
    ),
    (
        "mail_domains.html",
        include_str!("templates/mail_domains.html"),
    ),
    (
        "mail_domain.html",
        include_str!("templates/mail_domain.html"),
    ),
    (
        "mail_records.html",
        include_str!("templates/mail_records.html"),
    ),
    (
        "mail_suppressions.html",
        include_str!("templates/mail_suppressions.html"),
    ),
    (
        "mail_webhooks.html",
        include_str!("templates/mail_webhooks.html"),
    ),
    (
        "mail_webhook.html",
        include_str!("templates/mail_webhook.html"),
    ),
    ("members.html", include_str!("templates/members.html")),
    ("tokens.html", include_str!("templates/tokens.html")),
    ("token.html", include_str!("templates/token.html")),
    ("setup.html", include_str!("templates/setup.html")),
    ("authorize.html", include_str!("templates/authorize.html")),
    (
        "authorize_expired.html",
        include_str!("templates/authorize_expired.html"),
    ),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    for (name, source) in TEMPLATES {
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(%error, template = name, "a UI template does not parse");
        }
    }
    format::register(&mut env);
    env.add_global("css_url", assets::css_url());
    env.add_global("js_url", assets::js_url());
    env.add_global("segments_js_url", assets::segments_js_url());
    env
});

/// What every page of the layout shows: who is signed in, the
/// organisation and the switcher, the section, the CSRF token.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Layout {
    pub email: String,
    pub csrf: String,
    pub org: Option<OrgRef>,
    pub orgs: Vec<OrgRef>,
    pub role: &'static str,
    pub can_manage: bool,
    pub section: &'static str,
    pub title: String,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct OrgRef {
    pub id: String,
    pub name: String,
    pub role: &'static str,
}

/// Renders page `name` with the layout and the page's own values.
pub(crate) fn render(name: &str, layout: &Layout, page: impl Serialize) -> Result<String, UiError> {
    let ctx = context! { layout => Value::from_serialize(layout), ..Value::from_serialize(&page) };
    render_ctx(name, ctx)
}

/// Renders a page shown outside the layout (sign-in, messages); falls back
/// to plain text if even that fails.
pub(crate) fn render_bare(name: &str, page: impl Serialize) -> String {
    render_ctx(name, Value::from_serialize(&page)).unwrap_or_else(|_| {
        "<!doctype html><title>Cohort</title><p>Cohort could not show this page.</p>".into()
    })
}

fn render_ctx(name: &str, ctx: Value) -> Result<String, UiError> {
    ENV.get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|error| {
            tracing::error!(%error, template = name, "a UI template failed to render");
            UiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                "Cohort could not show this page.",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for (name, source) in TEMPLATES {
            let mut env = Environment::new();
            format::register(&mut env);
            for (other, text) in TEMPLATES {
                if other != name {
                    env.add_template(other, text)
                        .unwrap_or_else(|e| panic!("{other}: {e}"));
                }
            }
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn values_are_escaped() {
        let layout = Layout {
            email: "<b>@x.io".into(),
            csrf: "t".into(),
            org: None,
            orgs: vec![],
            role: "viewer",
            can_manage: false,
            section: "account",
            title: "T".into(),
        };
        let html = render(
            "message.html",
            &layout,
            context! { title => "<script>", message => "a&b" },
        )
        .unwrap_or_default();
        assert!(
            html.contains("&lt;script&gt;") && !html.contains("<script>"),
            "{html}"
        );
    }
}
