//! Natural-language segments, offline: merchants' phrasing ("customers who
//! bought twice but haven't opened an email in a month") read into a rule
//! of the rule language, with every word either placed, consumed as
//! filler, or returned as unplaced with its byte span. Pure, no IO, no
//! model. What phrasing maps to what is written down in
//! `docs/SEGMENTS.md` ("Natural language").
//!
//! The reading works clause by clause: the text is cut at `and`, `or`,
//! `but`, `who`, commas …; each clause gathers a frame (a verb, a
//! negation, a count, an amount, a time window, a product or category,
//! places, tags, segments) from phrases in any order; frames then lend
//! each other what English leaves out ("opened or clicked an email",
//! "bought shoes or bags in the last month") and become rules.

mod grammar;
mod lexicon;
mod tokens;

#[cfg(test)]
mod tests;

use chrono::NaiveDate;
use serde::Serialize;

use super::ast::Rule;

/// What the store knows that the grammar can name.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    /// The catalogue's products.
    pub products: Vec<CatalogueProduct>,
    /// The catalogue's category names, as the order lines carry them.
    pub categories: Vec<String>,
    /// Tags in use.
    pub tags: Vec<String>,
    /// Names of saved and ready-made segments.
    pub segments: Vec<String>,
    /// The store's currency (ISO 4217), amounts are compared in it.
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CatalogueProduct {
    pub name: String,
    pub id: Option<String>,
    pub sku: Option<String>,
}

impl CatalogueProduct {
    /// The value `bought product` compares: the SKU, else the id.
    pub fn key(&self) -> Option<&str> {
        self.sku.as_deref().or(self.id.as_deref())
    }
}

/// A part of the input: byte offsets and the text there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// A reading that gave a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub rule: Rule,
    /// The words no part of the rule came from (filler excluded), in
    /// order; adjacent words are one span.
    pub unplaced: Vec<Span>,
    /// What the merchant should know about the reading (an amount given in
    /// another currency than the store's, a part left out).
    pub notes: Vec<String>,
}

/// No rule could be made; `span` is the part that failed (empty at the
/// end of the text when nothing was there).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NotUnderstood {
    pub message: String,
    pub span: Span,
}

pub type Reading = Result<Placed, NotUnderstood>;

/// Reads `text` into a rule. `today` (UTC) dates phrases such as
/// `since January` and `this year`, which become windows in days.
pub fn from_text(text: &str, vocabulary: &Vocabulary, today: NaiveDate) -> Reading {
    grammar::read(text, vocabulary, today)
}
