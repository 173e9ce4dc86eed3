//! The text form of a rule, canonical: `parse(print(rule)) == rule`.
//! Parentheses appear where precedence needs them (`or` < `and` < `not`)
//! and around a nested `and`/`or` of the same kind, so the AST's shape
//! survives the trip.

use std::fmt::Write;

use super::ast::*;

pub fn print(rule: &Rule) -> String {
    let mut out = String::new();
    write_rule(&mut out, rule);
    out
}

/// A string literal: JSON's escaping, which the parser reads back.
pub fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

fn is_word(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn write_path(out: &mut String, path: &[String]) {
    for (i, key) in path.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if is_word(key) {
            out.push_str(key);
        } else {
            out.push_str(&quote(key));
        }
    }
}

pub(crate) fn literal_text(value: &Literal) -> String {
    match value {
        Literal::String(s) => quote(s),
        Literal::Number(d) => d.to_string(),
        Literal::Bool(b) => b.to_string(),
    }
}

fn write_test(out: &mut String, test: &ValueTest) {
    match test {
        ValueTest::Compare { op, value } => {
            let _ = write!(out, " {} {}", op.as_str(), literal_text(value));
        }
        ValueTest::In { values } => {
            let items: Vec<String> = values.iter().map(literal_text).collect();
            let _ = write!(out, " in [{}]", items.join(", "));
        }
        ValueTest::Contains { text } => {
            let _ = write!(out, " contains {}", quote(text));
        }
        ValueTest::Exists => out.push_str(" exists"),
    }
}

fn write_window(out: &mut String, window: &Window) {
    let unit = window.unit.word(window.amount);
    let _ = match window.relation {
        Relation::Within => write!(out, " within {} {unit}", window.amount),
        Relation::Before => write!(out, " before {} {unit} ago", window.amount),
    };
}

fn write_count(out: &mut String, count: &Count) {
    let _ = write!(
        out,
        " {} {} {}",
        count.op.as_str(),
        count.times,
        if count.times == 1 { "time" } else { "times" }
    );
}

fn write_filters(out: &mut String, filters: &[PropertyFilter]) {
    for (i, f) in filters.iter().enumerate() {
        out.push_str(if i == 0 {
            " where properties."
        } else {
            " and properties."
        });
        write_path(out, &f.path);
        write_test(out, &f.test);
    }
}

fn write_child(out: &mut String, rule: &Rule, parent: &Rule) {
    let parens = matches!(
        (parent, rule),
        (
            Rule::Not { .. } | Rule::And { .. },
            Rule::And { .. } | Rule::Or { .. }
        ) | (Rule::Or { .. }, Rule::Or { .. })
    );
    if parens {
        out.push('(');
        write_rule(out, rule);
        out.push(')');
    } else {
        write_rule(out, rule);
    }
}

fn write_rule(out: &mut String, rule: &Rule) {
    match rule {
        Rule::And { rules } | Rule::Or { rules } => {
            let joiner = if matches!(rule, Rule::And { .. }) {
                " and "
            } else {
                " or "
            };
            for (i, r) in rules.iter().enumerate() {
                if i > 0 {
                    out.push_str(joiner);
                }
                write_child(out, r, rule);
            }
        }
        Rule::Not { rule: inner } => {
            out.push_str("not ");
            write_child(out, inner, rule);
        }
        Rule::Trait { path, test } => {
            out.push_str("trait.");
            write_path(out, path);
            write_test(out, test);
        }
        Rule::EmailExists => out.push_str("email exists"),
        Rule::Subscribed => out.push_str("subscribed"),
        Rule::Unsubscribed => out.push_str("unsubscribed"),
        Rule::Bounced => out.push_str("bounced"),
        Rule::Tag { tag } => {
            let _ = write!(out, "tag {}", quote(tag));
        }
        Rule::Metric { metric, test } => {
            out.push_str(metric.as_str());
            match test {
                MetricTest::Compare { op, value } => {
                    let _ = write!(out, " {} {}", op.as_str(), value.0);
                }
                MetricTest::Window { window } => write_window(out, window),
            }
        }
        Rule::Performed {
            event,
            count,
            window,
            filters,
        } => {
            let _ = write!(out, "performed {}", quote(event));
            if let Some(c) = count {
                write_count(out, c);
            }
            if let Some(w) = window {
                write_window(out, w);
            }
            write_filters(out, filters);
        }
        Rule::LastPerformed {
            event,
            window,
            filters,
        } => {
            let _ = write!(out, "last performed {}", quote(event));
            write_window(out, window);
            write_filters(out, filters);
        }
        Rule::Email {
            action,
            campaign,
            count,
            window,
        } => {
            let _ = write!(out, "{} email", action.word());
            if let Some(c) = campaign {
                let _ = write!(out, " {}", quote(c));
            }
            if let Some(c) = count {
                write_count(out, c);
            }
            if let Some(w) = window {
                write_window(out, w);
            }
        }
        Rule::Bought {
            item,
            value,
            window,
        } => {
            let word = match item {
                BoughtItem::Product => "product",
                BoughtItem::Category => "category",
            };
            let _ = write!(out, "bought {word} {}", quote(value));
            if let Some(w) = window {
                write_window(out, w);
            }
        }
        Rule::InSegment { segment } => {
            let _ = write!(out, "in segment {}", quote(segment));
        }
        Rule::Rfm { field, op, value } => {
            let _ = write!(
                out,
                "rfm.{} {} {}",
                field.word(),
                op.as_str(),
                literal_text(value)
            );
        }
    }
}
