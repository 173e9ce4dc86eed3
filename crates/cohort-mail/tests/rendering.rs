//! A real abandoned-cart template through the whole rendering: MJML to
//! HTML once, a recipient's variables (escaped), every web link through
//! the signed click redirect, the unsubscribe link left alone, the open
//! pixel, the plain-text part; and the errors a merchant sees at save and
//! preview time, in their own lines.

use cohort_domain::tracking::{Tracked, TrackingKey};
use cohort_mail::{compile, render_message, LinkTracking, Part, TemplateError};
use serde_json::json;

const CART_MJML: &str = r##"<mjml>
  <mj-head>
    <mj-title>Your cart at {{ store.name }}</mj-title>
    <mj-preview>You left {{ cart.items|length }} items behind</mj-preview>
  </mj-head>
  <mj-body background-color="#f4f4f4">
    <mj-section>
      <mj-column>
        <mj-text font-size="20px">Hi {{ profile.first_name }},</mj-text>
        <mj-text>You left these in your cart:</mj-text>
        <mj-text>
          {% for item in cart.items %}
          <p><a href="{{ item.url }}">{{ item.name }}</a> × {{ item.quantity }}: {{ item.price }}</p>
          {% endfor %}
        </mj-text>
        <mj-button href="{{ cart.recover_url }}" background-color="#0b5cad">Back to your cart</mj-button>
        <mj-text font-size="11px"><a href="{{ unsubscribe_url }}" data-cohort-notrack>Unsubscribe</a> · <a href="mailto:help@shop.example">help@shop.example</a></mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>"##;

fn context() -> serde_json::Value {
    json!({
        "store": {"name": "Blue Mugs"},
        "profile": {"first_name": "Ann <script>"},
        "cart": {
            "recover_url": "https://shop.example/cart?token=abc&utm_source=cohort",
            "items": [
                {"name": "Blue Mug", "url": "https://shop.example/p/blue-mug", "quantity": 2, "price": "€24.00"},
                {"name": "Teapot", "url": "https://shop.example/p/teapot", "quantity": 1, "price": "€39.50"},
            ],
        },
        "unsubscribe_url": "https://cdp.example/u/tok123",
    })
}

fn key() -> TrackingKey {
    TrackingKey::new(vec![9; 32]).unwrap()
}

/// The click targets of a rendered body, verified through their tokens.
fn clicked_targets(html: &str, key: &TrackingKey) -> Vec<String> {
    html.split("https://cdp.example/t/c/")
        .skip(1)
        .map(|rest| {
            let token: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
                .collect();
            key.verify(&token).unwrap().url.unwrap()
        })
        .collect()
}

#[test]
fn a_cart_email_renders_with_tracked_links_a_pixel_and_a_text_part() {
    let template = compile("{{ profile.first_name }}, your cart is waiting", CART_MJML).unwrap();
    template.check(&context()).unwrap();
    let key = key();
    let tracking = LinkTracking {
        base_url: "https://cdp.example/",
        key: &key,
        message_id: "msg_42",
    };
    let message = render_message(&template, &context(), &tracking).unwrap();

    // The subject is not HTML: kept as given.
    assert_eq!(message.subject, "Ann <script>, your cart is waiting");
    // MJML became responsive HTML; the variables are escaped in it.
    assert!(
        message.html.starts_with("<!doctype html>"),
        "{}",
        &message.html[..200]
    );
    assert!(message.html.contains("@media only screen"));
    assert!(message.html.contains("Hi Ann &lt;script&gt;,"));
    assert!(!message.html.contains("<script>"));
    assert!(message.html.contains("Your cart at Blue Mugs</title>"));
    assert!(message.html.contains("Blue Mug</a> × 2: €24.00"));

    // Every web link through the redirect, each token naming its target
    // (entities decoded: the `&` of the cart URL is one `&`).
    assert_eq!(
        clicked_targets(&message.html, &key),
        [
            "https://shop.example/p/blue-mug",
            "https://shop.example/p/teapot",
            "https://shop.example/cart?token=abc&utm_source=cohort",
        ]
    );
    assert!(!message.html.contains("href=\"https://shop.example"));
    // The unsubscribe and mailto links are left alone, the marker removed.
    assert!(
        message
            .html
            .contains("href=\"https:&#x2f;&#x2f;cdp.example&#x2f;u&#x2f;tok123\"")
            || message
                .html
                .contains("href=\"https://cdp.example/u/tok123\""),
        "{}",
        message.html
    );
    assert!(!message.html.contains("data-cohort-notrack"));
    assert!(message.html.contains("href=\"mailto:help@shop.example\""));

    // One open pixel, inside the body, its token naming the message.
    let pixel_at = message
        .html
        .find("https://cdp.example/t/o/")
        .expect("the pixel");
    assert!(pixel_at < message.html.rfind("</body>").unwrap());
    let token: String = message.html[pixel_at + "https://cdp.example/t/o/".len()..]
        .split(".gif")
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        key.verify(&token).unwrap(),
        Tracked {
            message_id: "msg_42".into(),
            url: None
        }
    );

    // The text part: the words, and the (tracked) links as references.
    assert!(
        message.text.contains("Hi Ann <script>,"),
        "{}",
        message.text
    );
    assert!(message.text.contains("Back to your cart"));
    assert!(message.text.contains("https://cdp.example/t/c/"));
    assert!(!message.text.contains("<p>"));

    insta::assert_snapshot!("cart_text_part", message.text);
}

#[test]
fn an_undefined_variable_is_reported_at_check_time_in_the_merchants_line() {
    let template = compile("Hello {{ profile.first_name }}", CART_MJML).unwrap();
    let mut sample = context();
    sample["cart"]
        .as_object_mut()
        .unwrap()
        .remove("recover_url");
    match template.check(&sample) {
        Err(TemplateError::Variables {
            part,
            line,
            message,
        }) => {
            assert_eq!(part, Part::Mjml);
            assert_eq!(line, 16, "the mj-button's line: {message}");
            assert!(message.contains("undefined"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let template = compile("Hello {{ profil.first_name }}", CART_MJML).unwrap();
    assert!(matches!(
        template.check(&context()),
        Err(TemplateError::Variables {
            part: Part::Subject,
            line: 1,
            ..
        })
    ));
}

#[test]
fn bad_syntax_and_bad_mjml_are_refused_when_compiled() {
    let broken = CART_MJML.replace("{% endfor %}", "");
    match compile("Hi", &broken) {
        Err(TemplateError::Variables {
            part: Part::Mjml,
            message,
            ..
        }) => {
            assert!(message.contains("syntax"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        compile("Hi {{ name", CART_MJML),
        Err(TemplateError::Variables {
            part: Part::Subject,
            ..
        })
    ));
    assert!(matches!(
        compile("Hi", "<mjml><mj-body><mj-section></mj-body></mjml>"),
        Err(TemplateError::Mjml { .. })
    ));
    assert!(matches!(
        compile("two\nlines", CART_MJML),
        Err(TemplateError::Variables {
            part: Part::Subject,
            ..
        })
    ));
}
