//! Segments: the rule language (AST, text form, parser, printer), the
//! naive evaluator over a profile's facts, and what a rule depends on. The
//! semantics of every predicate are written down in `docs/SEGMENTS.md`;
//! the SQL compiler in `cohort-store::segments` is tested against
//! [`eval::evaluate`].

pub mod ast;
pub mod defaults;
pub mod deps;
pub mod eval;
pub mod facts;
pub mod language;
pub mod parse;
pub mod print;
pub mod rfm;

#[cfg(test)]
mod tests;

pub use ast::*;
pub use deps::{dependencies, find_cycle, next_change_us, Dependencies, SegmentCycle};
pub use eval::{evaluate, EvalError};
pub use facts::{profile_facts, EventFact, LineFact, ProfileFacts, PurchaseFact, RfmFacts};
pub use parse::{parse, ParseError};
pub use print::print;
