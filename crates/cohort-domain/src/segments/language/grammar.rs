//! The grammar: tokens → clauses (frames) → rules. See the module notes in
//! `mod.rs` and the mapping in `docs/SEGMENTS.md`.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use super::lexicon::{self, CITIES, COUNTRIES};
use super::tokens::{tokenize, Kind, Token};
use super::{NotUnderstood, Placed, Reading, Span, Vocabulary};
use crate::segments::ast::*;
use crate::segments::{parse, print};

pub const ORDER_COMPLETED: &str = "Order Completed";
pub const PRODUCT_VIEWED: &str = "Product Viewed";
pub const PRODUCT_ADDED: &str = "Product Added";
pub const CHECKOUT_STARTED: &str = "Checkout Started";
pub const TAG_IN_CART: &str = "ecommerce.in_cart";
pub const TAG_IN_CHECKOUT: &str = "ecommerce.in_checkout";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verb {
    Buy,
    Spend,
    Email(EmailAction),
    Visit,
    View,
    Add,
    Abandon,
    StartCheckout,
    Subscribe,
    Unsubscribe,
    Refund,
    Cancel,
    Fulfil,
    Bounce,
    /// "with an email address": the profile has an email.
    HasEmail,
}

impl Verb {
    /// Verbs that replace a weaker one in the same clause ("got a refund").
    fn overrides(self, other: Verb) -> bool {
        matches!(
            (self, other),
            (
                Verb::Refund | Verb::Cancel | Verb::Fulfil | Verb::Subscribe | Verb::Unsubscribe,
                Verb::Email(EmailAction::Received)
            ) | (Verb::Add | Verb::Abandon | Verb::StartCheckout, Verb::Buy)
                | (Verb::Spend, Verb::Buy)
                | (Verb::Fulfil | Verb::Refund | Verb::Cancel, Verb::Buy)
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Joint {
    And,
    Or,
}

#[derive(Clone, Debug, PartialEq)]
enum Item {
    Category(String),
    /// The value `bought product` compares (SKU or id).
    Product(String),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Moment {
    Last,
    First,
}

type Toks = Vec<usize>;

/// An amount: `op value`, per order (`orders over $100`) or in total.
#[derive(Clone, Debug)]
struct Amount {
    op: CmpOp,
    value: Decimal,
    money: bool,
    per_order: bool,
    tokens: Toks,
}

#[derive(Clone, Debug, Default)]
struct Frame {
    joint: Option<Joint>,
    /// The farther edge of "between 30 and 90 days ago".
    window_upper: Option<Window>,
    /// The upper bound of "between 2 and 5 times".
    count_upper: Option<Count>,
    /// Tokens of this clause nothing took (an unquoted campaign name).
    unknown: Toks,
    /// The word that joined this clause to the one before.
    joint_word: String,
    negations: Toks,
    verb: Option<(Verb, Toks)>,
    order_noun: Toks,
    email_noun: Toks,
    cart_noun: Toks,
    checkout_noun: Toks,
    moment: Option<(Moment, Toks)>,
    last_seen: Toks,
    average: Toks,
    count: Option<(Count, Toks)>,
    amounts: Vec<Amount>,
    window: Option<(Window, Toks)>,
    item: Option<(Item, Toks)>,
    quoted: Option<(String, Toks)>,
    extras: Vec<(Rule, Toks)>,
    after_order_noun: bool,
}

impl Frame {
    fn negated(&self) -> bool {
        self.negations.len() % 2 == 1
    }

    fn is_empty(&self) -> bool {
        self.negations.is_empty() && !self.has_content()
    }

    fn has_content(&self) -> bool {
        self.verb.is_some()
            || self.has_nouns()
            || self.count.is_some()
            || !self.amounts.is_empty()
            || self.window.is_some()
            || self.item.is_some()
            || self.quoted.is_some()
            || !self.extras.is_empty()
    }

    fn has_nouns(&self) -> bool {
        !self.order_noun.is_empty()
            || !self.email_noun.is_empty()
            || !self.cart_noun.is_empty()
            || !self.checkout_noun.is_empty()
            || self.moment.is_some()
            || !self.last_seen.is_empty()
            || !self.average.is_empty()
    }

    /// Only a count, an amount or a window: it qualifies a neighbour.
    fn only_qualifiers(&self) -> bool {
        self.verb.is_none()
            && !self.has_nouns()
            && self.item.is_none()
            && self.quoted.is_none()
            && self.extras.is_empty()
            && self.negations.is_empty()
            && self.unknown.is_empty()
            && (self.count.is_some() || !self.amounts.is_empty() || self.window.is_some())
    }

    /// Only a verb (and maybe a negation): it shares its neighbour's object.
    fn bare_verb(&self) -> bool {
        self.verb.is_some()
            && !self.has_nouns()
            && self.count.is_none()
            && self.amounts.is_empty()
            && self.window.is_none()
            && self.item.is_none()
            && self.quoted.is_none()
            && self.extras.is_empty()
    }

    fn verb(&self) -> Option<Verb> {
        self.verb.as_ref().map(|v| v.0)
    }
}

struct Names {
    /// (key, segment name, loose)
    segments: Vec<(String, String)>,
    categories: Vec<(String, String)>,
    /// (key of the name, value compared)
    products: Vec<(String, String)>,
    tags: Vec<(String, String)>,
    words: BTreeSet<String>,
}

fn key_of(text: &str) -> String {
    let none = BTreeSet::new();
    tokenize(text, &none, false)
        .into_iter()
        .filter(|t| t.kind == Kind::Word || matches!(t.kind, Kind::Number(_)))
        .map(|t| {
            if t.kind == Kind::Word {
                t.word
            } else {
                t.raw.to_lowercase()
            }
        })
        .collect()
}

const GENERIC: &[&str] = &[
    "customers",
    "customer",
    "shoppers",
    "clients",
    "users",
    "people",
    "profiles",
    "members",
    "buyers",
];

/// Words that mean something to the grammar on their own, so that a
/// segment name shortened to them ("Active Customers" → "active") is not
/// matched by them.
/// Words the grammar reads that the lexicon's list leaves out (number
/// words, units, months, currencies), so that typo repair leaves them be.
const GRAMMAR_KNOWN: &[&str] = &[
    "three",
    "seven",
    "eight",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "ninety",
    "hundred",
    "thousand",
    "dozen",
    "couple",
    "single",
    "once",
    "twice",
    "thrice",
    "times",
    "orders",
    "hours",
    "weeks",
    "months",
    "years",
    "quarter",
    "fortnight",
    "daily",
    "dollars",
    "euros",
    "pounds",
    "bucks",
    "francs",
    "rupees",
    "zloty",
    "opens",
    "clicks",
    "views",
    "visits",
    "spends",
    "spent",
    "opened",
    "clicked",
    "viewed",
    "visited",
    "bought",
    "ordered",
    "purchased",
    "added",
    "basket",
    "baskets",
    "carts",
    "checkout",
    "abandoned",
    "started",
    "subscribed",
    "unsubscribed",
    "refunded",
    "canceled",
    "fulfilled",
    "shipped",
    "bounced",
    "inactive",
    "dormant",
    "lapsed",
    "lifetime",
    "average",
    "revenue",
    "latest",
    "recent",
    "previous",
    "since",
    "today",
    "yesterday",
    "recently",
    "lately",
    "first",
    "last",
    "never",
    "haven't",
    "whose",
    "outside",
    "living",
    "based",
    "located",
    "tagged",
    "label",
    "labeled",
    "segment",
    "members",
    "champions",
    "loyal",
    "attention",
    "risk",
    "address",
    "newsletter",
    "campaign",
    "message",
    "messages",
    "mailing",
    "transactions",
    "items",
    "products",
    "purchases",
    "purchase",
    "emails",
    "email",
    "returning",
    "repeat",
    "multiple",
    "several",
    "exactly",
    "precisely",
    "between",
    "minimum",
    "maximum",
    "upwards",
    "excess",
    "north",
    "higher",
    "bigger",
    "larger",
    "smaller",
    "lower",
    "fewer",
    "greater",
    "above",
    "below",
    "under",
    "exceeding",
    "beyond",
    "opened",
    "receive",
    "received",
    "delivered",
    "signed",
    "opted",
    "joined",
    "browsed",
    "browse",
    "looked",
];

const GRAMMAR_WORDS: &[&str] = &[
    "active",
    "new",
    "engaged",
    "recent",
    "inactive",
    "subscribed",
    "unsubscribed",
    "repeat",
];

impl Names {
    fn new(v: &Vocabulary) -> Names {
        let mut segments = Vec::new();
        for name in &v.segments {
            let key = key_of(name);
            if key.is_empty() {
                continue;
            }
            segments.push((key, name.clone()));
            let none = BTreeSet::new();
            let words: Vec<String> = tokenize(name, &none, false)
                .into_iter()
                .filter(|t| t.kind == Kind::Word)
                .map(|t| t.word)
                .collect();
            if words.len() >= 2 && GENERIC.contains(&words[words.len() - 1].as_str()) {
                let short: String = words[..words.len() - 1].concat();
                if short.len() >= 3 && !GRAMMAR_WORDS.contains(&short.as_str()) {
                    segments.push((short, name.clone()));
                }
            }
        }
        let categories = v
            .categories
            .iter()
            .map(|c| (key_of(c), c.clone()))
            .filter(|c| !c.0.is_empty())
            .collect();
        let mut products = Vec::new();
        for p in &v.products {
            if let Some(k) = p.key() {
                products.push((key_of(&p.name), k.to_owned()));
            }
        }
        products.retain(|p: &(String, String)| !p.0.is_empty());
        let tags = v
            .tags
            .iter()
            .map(|t| (key_of(t), t.clone()))
            .filter(|t| !t.0.is_empty())
            .collect();
        let mut words: BTreeSet<String> = lexicon::KNOWN_WORDS
            .iter()
            .map(|w| (*w).to_owned())
            .collect();
        for (_, names) in COUNTRIES {
            for n in *names {
                words.extend(n.split(' ').map(str::to_owned));
            }
        }
        for c in CITIES {
            words.extend(c.split(' ').map(str::to_lowercase));
        }
        words.extend(FILLER.iter().map(|w| (*w).to_owned()));
        words.extend(
            [
                "while",
                "whilst",
                "which",
                "where",
                "whereas",
                "although",
                "though",
                "however",
                "whom",
                // common words one edit from a grammar word, never repaired
                "older",
                "younger",
                "other",
                "others",
                "women",
                "woman",
                "phone",
                "number",
                // the grammar's own verb forms
                "click",
                "clicks",
                "clicking",
                "clickers",
                "opens",
                "opening",
                "openers",
                "viewing",
                "visiting",
                "visitors",
                "buying",
                "purchasing",
                "ordering",
                "spending",
                "spends",
                "subscribes",
                "abandon",
                "abandons",
                "carted",
                "refunds",
                "cancel",
                "cancels",
            ]
            .map(str::to_owned),
        );
        words.extend(GRAMMAR_KNOWN.iter().map(|w| (*w).to_owned()));
        for (seq, _) in COMPARATORS {
            words.extend(seq.iter().map(|w| (*w).to_owned()));
        }
        for table in [&segments, &categories, &products, &tags] {
            words.extend(table.iter().map(|(k, _)| k.clone()));
        }
        for p in &v.products {
            words.extend(p.sku.iter().chain(&p.id).map(|c| c.to_lowercase()));
        }
        let none = BTreeSet::new();
        for name in v
            .segments
            .iter()
            .chain(&v.categories)
            .chain(&v.tags)
            .chain(v.products.iter().map(|p| &p.name))
        {
            for t in tokenize(name, &none, false) {
                if t.kind == Kind::Word {
                    words.insert(t.word);
                }
            }
        }
        Names {
            segments,
            categories,
            products,
            tags,
            words,
        }
    }
}

/// `a` and `b` are one noun, singular or plural.
fn same_noun(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let (short, long) = if a.len() < b.len() { (a, b) } else { (b, a) };
    match long.strip_prefix(short) {
        Some("s") | Some("es") => true,
        _ => {
            short.ends_with('y')
                && long.ends_with("ies")
                && long[..long.len() - 3] == short[..short.len() - 1]
        }
    }
}

struct Reader<'a> {
    toks: Vec<Token>,
    names: Names,
    vocabulary: &'a Vocabulary,
    today: NaiveDate,
    filler: BTreeSet<usize>,
    used: BTreeSet<usize>,
    notes: Vec<String>,
}

pub fn read(text: &str, vocabulary: &Vocabulary, today: NaiveDate) -> Reading {
    // A rule typed in the rule language is taken as it is.
    if let Ok(rule) = parse(text) {
        if rule.validate().is_ok() {
            return Ok(Placed {
                rule,
                unplaced: Vec::new(),
                notes: Vec::new(),
            });
        }
    }
    let names = Names::new(vocabulary);
    let toks = tokenize(text, &names.words, true);
    let mut r = Reader {
        toks,
        names,
        vocabulary,
        today,
        filler: BTreeSet::new(),
        used: BTreeSet::new(),
        notes: Vec::new(),
    };
    let frames = r.frames();
    let frames = arrange(frames);
    let mut parts: Vec<(Joint, Rule)> = Vec::new();
    for f in frames {
        let joint = f.joint.unwrap_or(Joint::And);
        if let Some(rule) = r.rule_of(f) {
            parts.push((joint, rule));
        }
    }
    let unplaced = r.unplaced(text);
    let Some(rule) = combine(parts) else {
        let span = unplaced.first().cloned().unwrap_or(Span {
            start: text.len(),
            end: text.len(),
            text: String::new(),
        });
        let message = if text.trim().is_empty() {
            "say who the segment is for, e.g. \"customers who bought twice\"".to_owned()
        } else if span.text.is_empty() {
            "found no condition in the text (say what they did, where they are, or a tag or segment)"
                .to_owned()
        } else {
            format!(
                "could not read \"{}\" as a condition (say what they did, e.g. \"bought twice\", where they are, or a tag or segment)",
                span.text
            )
        };
        return Err(NotUnderstood { message, span });
    };
    // Everything the grammar returns is a rule the language accepts as is.
    let printed = print(&rule);
    if rule.validate().is_err() || parse(&printed).ok().as_ref() != Some(&rule) {
        return Err(NotUnderstood {
            message: format!("the reading gave a rule that does not check: {printed}"),
            span: Span {
                start: 0,
                end: text.len(),
                text: text.to_owned(),
            },
        });
    }
    Ok(Placed {
        rule,
        unplaced,
        notes: r.notes,
    })
}

fn and(mut rules: Vec<Rule>) -> Option<Rule> {
    let mut flat = Vec::new();
    for r in rules.drain(..) {
        match r {
            Rule::And { rules } => flat.extend(rules),
            other => flat.push(other),
        }
    }
    merge_places(&mut flat);
    match flat.len() {
        0 => None,
        1 => flat.pop(),
        _ => Some(Rule::And { rules: flat }),
    }
}

fn or(mut rules: Vec<Rule>) -> Option<Rule> {
    let mut flat = Vec::new();
    for r in rules.drain(..) {
        match r {
            Rule::Or { rules } => flat.extend(rules),
            other => flat.push(other),
        }
    }
    match flat.len() {
        0 => None,
        1 => flat.pop(),
        _ => Some(Rule::Or { rules: flat }),
    }
}

fn not(rule: Rule) -> Rule {
    match rule {
        Rule::Not { rule } => *rule,
        other => Rule::Not {
            rule: Box::new(other),
        },
    }
}

/// "from Germany, Austria and Switzerland": nobody lives in three
/// countries, so an `and` of places is one `in` test.
fn merge_places(rules: &mut Vec<Rule>) {
    for field in ["country", "city"] {
        let mut values = Vec::new();
        let mut first = None;
        let mut k = 0;
        while k < rules.len() {
            if let Rule::Trait {
                path,
                test:
                    ValueTest::Compare {
                        op: CmpOp::Eq,
                        value,
                    },
            } = &rules[k]
            {
                if path.len() == 1 && path[0] == field {
                    if !values.contains(value) {
                        values.push(value.clone());
                    }
                    if first.is_none() {
                        first = Some(k);
                        k += 1;
                    } else {
                        rules.remove(k);
                    }
                    continue;
                }
            }
            k += 1;
        }
        if let (Some(at), true) = (first, values.len() >= 2) {
            rules[at] = Rule::Trait {
                path: vec![field.to_owned()],
                test: ValueTest::In { values },
            };
        }
    }
}

/// Two conditions of one kind joined by `or` ("from Spain or Italy",
/// "bought coffee or tea") are one alternative, so that what follows
/// ("… who bought dresses") applies to both.
fn same_kind(a: &Rule, b: &Rule) -> bool {
    let kind = |r: &Rule| -> Option<String> {
        match r {
            Rule::Trait { path, .. } => Some(format!("trait {path:?}")),
            Rule::Tag { .. } => Some("tag".into()),
            Rule::InSegment { .. } => Some("segment".into()),
            Rule::Bought { .. } => Some("bought".into()),
            Rule::Or { rules } => rules.first().and_then(|f| {
                let k = kind_of_leaf(f)?;
                rules
                    .iter()
                    .all(|r| kind_of_leaf(r).as_ref() == Some(&k))
                    .then_some(k)
            }),
            _ => None,
        }
    };
    kind(a).is_some() && kind(a) == kind(b)
}

fn kind_of_leaf(r: &Rule) -> Option<String> {
    match r {
        Rule::Trait { path, .. } => Some(format!("trait {path:?}")),
        Rule::Tag { .. } => Some("tag".into()),
        Rule::InSegment { .. } => Some("segment".into()),
        Rule::Bought { .. } => Some("bought".into()),
        _ => None,
    }
}

fn combine(parts: Vec<(Joint, Rule)>) -> Option<Rule> {
    let mut merged: Vec<(Joint, Rule)> = Vec::new();
    for (joint, rule) in parts {
        if let (Joint::Or, Some(last)) = (joint, merged.last_mut()) {
            if same_kind(&last.1, &rule) {
                let prev = std::mem::replace(&mut last.1, Rule::EmailExists);
                last.1 = or(vec![prev, rule]).unwrap_or(Rule::EmailExists);
                continue;
            }
        }
        merged.push((joint, rule));
    }
    let parts = merged;
    let mut groups: Vec<Vec<Rule>> = Vec::new();
    for (joint, rule) in parts {
        match (joint, groups.last_mut()) {
            (Joint::And, Some(group)) => group.push(rule),
            _ => groups.push(vec![rule]),
        }
    }
    or(groups.into_iter().filter_map(and).collect())
}

/// Frames lend each other what English leaves out.
fn arrange(frames: Vec<Frame>) -> Vec<Frame> {
    // Drop clauses with nothing in them ("customers" before "who …").
    let mut kept: Vec<Frame> = Vec::new();
    let mut pending_or = false;
    for mut f in frames {
        if f.is_empty() {
            pending_or |= f.joint == Some(Joint::Or);
            continue;
        }
        if pending_or && !kept.is_empty() {
            f.joint = Some(Joint::Or);
        }
        pending_or = false;
        kept.push(f);
    }
    // A clause of only a count, an amount or a window qualifies the
    // clause before it (or, first, the one after).
    let mut k = 0;
    while k < kept.len() {
        if kept[k].only_qualifiers() && kept.len() > 1 {
            let f = kept.remove(k);
            let target = if k > 0 && lacks_qualifiers(&kept[k - 1], &f) {
                k - 1
            } else if k < kept.len() {
                k
            } else {
                k - 1
            };
            let joint = f.joint;
            let t = &mut kept[target];
            if t.count.is_none() {
                t.count = f.count;
            }
            if t.window.is_none() {
                t.window = f.window;
            }
            t.amounts.extend(f.amounts);
            if target == k && k == 0 {
                t.joint = joint;
            }
            continue;
        }
        k += 1;
    }
    // A bare verb shares the next clause's object ("opened or clicked an
    // email"); a negated one negates both ("haven't opened or clicked").
    for k in 0..kept.len().saturating_sub(1) {
        let shares = matches!(
            kept[k + 1].joint_word.as_str(),
            "and" | "or" | "but" | "nor"
        );
        if kept[k].bare_verb() && kept[k + 1].verb.is_some() && shares {
            let next = kept[k + 1].clone();
            let f = &mut kept[k];
            f.order_noun = next.order_noun.clone();
            f.email_noun = next.email_noun.clone();
            f.cart_noun = next.cart_noun.clone();
            f.checkout_noun = next.checkout_noun.clone();
            f.count = next.count.clone();
            f.window = next.window.clone();
            f.item = next.item.clone();
            f.quoted = next.quoted.clone();
            if f.negated() && !next.negated() && next.joint == Some(Joint::Or) {
                let neg = f.negations.clone();
                kept[k + 1].negations = neg;
                kept[k + 1].joint = Some(Joint::And);
            }
        }
    }
    // A clause with an object but no verb takes the verb before it
    // ("bought shoes or bags", "bought shoes but not socks").
    for k in 1..kept.len() {
        let f = &kept[k];
        let qualified = f.negated() && (f.window.is_some() || f.count.is_some());
        let orphan = f.verb.is_none()
            && (f.item.is_some() || f.quoted.is_some() || qualified)
            && f.extras.is_empty()
            && !f.has_nouns();
        if orphan {
            if let Some(prev) = kept[k - 1].verb.clone() {
                let prev_neg = kept[k - 1].negated();
                let prev_window = kept[k - 1].window.clone();
                let f = &mut kept[k];
                f.verb = Some((prev.0, Vec::new()));
                if f.window.is_none() {
                    f.window = prev_window.map(|w| (w.0, Vec::new()));
                }
                if prev_neg && !f.negated() && f.joint == Some(Joint::Or) {
                    f.negations.push(usize::MAX);
                    f.joint = Some(Joint::And);
                }
            }
        }
    }
    // "viewed dresses in the last 3 days but didn't add to cart": a
    // contrast along the shopping funnel holds over the same time.
    for k in 1..kept.len() {
        let contrast = kept[k].joint_word == "but"
            && kept[k].negated()
            && kept[k].verb.is_some()
            && kept[k].window.is_none()
            && funnel(kept[k].verb())
            && funnel(kept[k - 1].verb())
            && !kept[k - 1].negated();
        if contrast {
            if let Some(w) = kept[k - 1].window.clone() {
                kept[k].window = Some((w.0, Vec::new()));
            }
        }
    }
    // Clauses of one verb share a window given once at the end.
    for k in (0..kept.len().saturating_sub(1)).rev() {
        if kept[k].window.is_none()
            && kept[k].verb().is_some()
            && kept[k].verb() == kept[k + 1].verb()
            && kept[k].item.is_some()
        {
            if let Some(w) = kept[k + 1].window.clone() {
                kept[k].window = Some((w.0, Vec::new()));
            }
        }
    }
    kept
}

/// Steps of the shopping funnel: viewing, carting, checking out, buying.
fn funnel(verb: Option<Verb>) -> bool {
    matches!(
        verb,
        Some(Verb::View | Verb::Add | Verb::StartCheckout | Verb::Buy | Verb::Abandon)
    )
}

fn lacks_qualifiers(target: &Frame, q: &Frame) -> bool {
    (q.count.is_none() || target.count.is_none())
        && (q.window.is_none() || target.window.is_none())
        && (q.amounts.is_empty() || target.amounts.is_empty())
}

/// A comparison phrase and the operator it means.
const COMPARATORS: &[(&[&str], CmpOp)] = &[
    (&["no", "more", "than"], CmpOp::Le),
    (&["not", "more", "than"], CmpOp::Le),
    (&["no", "more", "then"], CmpOp::Le),
    (&["no", "less", "than"], CmpOp::Ge),
    (&["not", "less", "than"], CmpOp::Ge),
    (&["no", "fewer", "than"], CmpOp::Ge),
    (&["in", "excess", "of"], CmpOp::Gt),
    (&["more", "than"], CmpOp::Gt),
    (&["more", "then"], CmpOp::Gt),
    (&["greater", "than"], CmpOp::Gt),
    (&["higher", "than"], CmpOp::Gt),
    (&["bigger", "than"], CmpOp::Gt),
    (&["larger", "than"], CmpOp::Gt),
    (&["upwards", "of"], CmpOp::Gt),
    (&["north", "of"], CmpOp::Gt),
    (&["not", "over"], CmpOp::Le),
    (&["over"], CmpOp::Gt),
    (&["above"], CmpOp::Gt),
    (&["exceeding"], CmpOp::Gt),
    (&["beyond"], CmpOp::Gt),
    (&["at", "least"], CmpOp::Ge),
    (&["minimum", "of"], CmpOp::Ge),
    (&["a", "minimum", "of"], CmpOp::Ge),
    (&["minimum"], CmpOp::Ge),
    (&["min"], CmpOp::Ge),
    (&["less", "than"], CmpOp::Lt),
    (&["less", "then"], CmpOp::Lt),
    (&["fewer", "than"], CmpOp::Lt),
    (&["lower", "than"], CmpOp::Lt),
    (&["smaller", "than"], CmpOp::Lt),
    (&["under"], CmpOp::Lt),
    (&["below"], CmpOp::Lt),
    (&["at", "most"], CmpOp::Le),
    (&["a", "maximum", "of"], CmpOp::Le),
    (&["maximum", "of"], CmpOp::Le),
    (&["maximum"], CmpOp::Le),
    (&["max"], CmpOp::Le),
    (&["up", "to"], CmpOp::Le),
    (&["exactly"], CmpOp::Eq),
    (&["precisely"], CmpOp::Eq),
    (&["only"], CmpOp::Eq),
    (&["just"], CmpOp::Eq),
];

const SUFFIX_GE: &[&[&str]] = &[
    &["or", "more"],
    &["or", "above"],
    &["or", "over"],
    &["or", "greater"],
    &["or", "higher"],
    &["and", "up"],
    &["and", "above"],
    &["and", "over"],
    &["plus"],
    &["at", "least"],
    &["or", "more", "times"],
];
const SUFFIX_LE: &[&[&str]] = &[
    &["or", "less"],
    &["or", "fewer"],
    &["or", "under"],
    &["or", "below"],
    &["or", "lower"],
    &["and", "under"],
    &["and", "below"],
    &["at", "most"],
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Unit {
    None,
    Times,
    Orders,
    Emails,
    Time(TimeUnit, u32),
}

struct Quantity {
    op: Option<CmpOp>,
    value: Decimal,
    upper: Option<Decimal>,
    currency: Option<&'static str>,
    unit: Unit,
    ago: bool,
    len: usize,
}

fn time_unit(word: &str) -> Option<(TimeUnit, u32)> {
    Some(match word {
        "hour" | "hours" | "hr" | "hrs" | "h" => (TimeUnit::Hours, 1),
        "day" | "days" | "d" => (TimeUnit::Days, 1),
        "week" | "weeks" | "wk" | "wks" | "w" => (TimeUnit::Days, 7),
        "fortnight" | "fortnights" => (TimeUnit::Days, 14),
        "month" | "months" | "mo" | "mos" | "mth" | "mths" => (TimeUnit::Days, 30),
        "quarter" | "quarters" => (TimeUnit::Days, 90),
        "year" | "years" | "yr" | "yrs" | "y" => (TimeUnit::Days, 365),
        _ => return None,
    })
}

fn currency_word(word: &str) -> Option<&'static str> {
    Some(match word {
        "dollars" | "dollar" | "usd" | "bucks" | "buck" => "USD",
        "euros" | "euro" | "eur" => "EUR",
        "pounds" | "pound" | "gbp" | "quid" => "GBP",
        "yen" | "jpy" => "JPY",
        "francs" | "chf" => "CHF",
        "cad" => "CAD",
        "aud" => "AUD",
        "sek" | "kronor" => "SEK",
        "nok" => "NOK",
        "dkk" => "DKK",
        "pln" | "zloty" => "PLN",
        "inr" | "rupees" => "INR",
        _ => return None,
    })
}

fn month_of(word: &str) -> Option<u32> {
    Some(match word {
        "january" | "jan" => 1,
        "february" | "feb" => 2,
        "march" | "mar" => 3,
        "april" | "apr" => 4,
        "may" => 5,
        "june" | "jun" => 6,
        "july" | "jul" => 7,
        "august" | "aug" => 8,
        "september" | "sep" | "sept" => 9,
        "october" | "oct" => 10,
        "november" | "nov" => 11,
        "december" | "dec" => 12,
        _ => return None,
    })
}

fn window_days(amount: u32, unit: (TimeUnit, u32), ago: bool) -> Option<Window> {
    Some(Window {
        relation: if ago {
            Relation::Before
        } else {
            Relation::Within
        },
        amount: amount.checked_mul(unit.1)?,
        unit: unit.0,
    })
}

const FILLER: &[&str] = &[
    "customers",
    "customer",
    "people",
    "persons",
    "person",
    "folks",
    "shoppers",
    "shopper",
    "clients",
    "client",
    "users",
    "user",
    "profiles",
    "profile",
    "contacts",
    "contact",
    "members",
    "member",
    "everyone",
    "everybody",
    "anyone",
    "anybody",
    "someone",
    "all",
    "the",
    "a",
    "an",
    "have",
    "has",
    "had",
    "having",
    "been",
    "be",
    "is",
    "are",
    "was",
    "were",
    "did",
    "do",
    "does",
    "ever",
    "at",
    "to",
    "on",
    "of",
    "for",
    "with",
    "from",
    "in",
    "into",
    "our",
    "my",
    "their",
    "his",
    "her",
    "them",
    "they",
    "theyve",
    "whove",
    "whos",
    "me",
    "i",
    "any",
    "some",
    "something",
    "anything",
    "stuff",
    "thing",
    "things",
    "product",
    "products",
    "item",
    "items",
    "store",
    "shop",
    "site",
    "website",
    "online",
    "page",
    "pages",
    "list",
    "those",
    "these",
    "this",
    "made",
    "make",
    "placed",
    "place",
    "show",
    "find",
    "give",
    "select",
    "want",
    "need",
    "please",
    "segment",
    "segments",
    "group",
    "audience",
    "already",
    "still",
    "also",
    "too",
    "either",
    "ones",
    "by",
    "via",
    "as",
    "total",
    "worth",
    "valued",
    "totaling",
    "amount",
    "value",
    "address",
    "st",
    "nd",
    "rd",
    "th",
    "so",
    "far",
    "us",
    "we",
    "you",
    "your",
    "it",
    "its",
    "there",
    "ones",
    "currently",
    "actually",
    "really",
    "least",
    "time",
    "than",
    "then",
    "yet",
    "here",
    "s",
    "get",
    "got",
    "gotten",
    "sale",
    "whose",
    "country",
    "countries",
    "city",
    "town",
    "region",
    "sku",
    "skus",
    "code",
    "sales",
    "up",
    "back",
    "over",
    "single",
    "ago",
    "than",
];

impl Reader<'_> {
    fn word(&self, i: usize) -> &str {
        match self.toks.get(i) {
            Some(t) if t.kind == Kind::Word => &t.word,
            _ => "",
        }
    }

    fn words_at(&self, i: usize, seq: &[&str]) -> bool {
        seq.iter().enumerate().all(|(k, w)| self.word(i + k) == *w)
    }

    fn symbol(&self, i: usize) -> Option<char> {
        match self.toks.get(i).map(|t| &t.kind) {
            Some(Kind::Symbol(c)) => Some(*c),
            _ => None,
        }
    }

    fn number(&self, i: usize) -> Option<Decimal> {
        match self.toks.get(i).map(|t| &t.kind) {
            Some(Kind::Number(d)) => Some(*d),
            _ => None,
        }
    }

    fn frames(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut f = Frame::default();
        let mut i = 0;
        let mut content_end = 0;
        while i < self.toks.len() {
            if let Some((len, joint, negate)) = self.connector(i) {
                self.filler.extend(i..i + len);
                frames.push(std::mem::take(&mut f));
                f.joint = Some(joint);
                f.joint_word = self.word(i).to_owned();
                if negate {
                    f.negations.push(usize::MAX);
                }
                i += len;
                continue;
            }
            let before = f.clone();
            let before_negations = f.negations.len();
            let len = self.element(i, &mut f);
            if len == 0 {
                f.unknown.push(i);
                i += 1;
                continue;
            }
            // a second verb in one clause starts another clause, with the
            // negation said just before it
            let old = before.verb.as_ref().map(|v| v.0);
            let new = f.verb.as_ref().map(|v| v.0);
            if let (Some(old), Some(new)) = (old, new) {
                if old != new && !new.overrides(old) {
                    let mut prev = before;
                    let moved: Toks = prev
                        .negations
                        .iter()
                        .copied()
                        .filter(|k| *k != usize::MAX && *k >= content_end)
                        .collect();
                    prev.negations.retain(|k| !moved.contains(k));
                    // what the element brought besides its verb goes along
                    let new_toks = |now: &Toks, was: &Toks| -> Toks {
                        now.iter().filter(|k| !was.contains(k)).copied().collect()
                    };
                    let next = Frame {
                        joint: Some(Joint::And),
                        verb: f.verb.take(),
                        negations: moved,
                        order_noun: new_toks(&f.order_noun, &prev.order_noun),
                        email_noun: new_toks(&f.email_noun, &prev.email_noun),
                        cart_noun: new_toks(&f.cart_noun, &prev.cart_noun),
                        checkout_noun: new_toks(&f.checkout_noun, &prev.checkout_noun),
                        last_seen: new_toks(&f.last_seen, &prev.last_seen),
                        moment: f.moment.take().filter(|_| prev.moment.is_none()),
                        count: f.count.take().filter(|_| prev.count.is_none()),
                        ..Frame::default()
                    };
                    frames.push(prev);
                    f = next;
                }
            }
            if f.negations.len() == before_negations {
                content_end = i + len;
            }
            i += len;
        }
        frames.push(f);
        frames
    }

    /// `and`, `or`, `but`, `who`, `,` …: (tokens, joint, negates the next).
    fn connector(&self, i: usize) -> Option<(usize, Joint, bool)> {
        if let Some(c) = self.symbol(i) {
            return match c {
                ',' | ';' | '&' | '.' | '!' | '?' | '(' | ')' | ':' => Some((1, Joint::And, false)),
                '/' => Some((1, Joint::Or, false)),
                _ => None,
            };
        }
        if self.words_at(i, &["and", "or"]) {
            return Some((2, Joint::Or, false));
        }
        if self.words_at(i, &["or", "else"]) {
            return Some((2, Joint::Or, false));
        }
        Some(match self.word(i) {
            "or" => (1, Joint::Or, false),
            "nor" => (1, Joint::And, true),
            "and" | "but" | "who" | "whom" | "that" | "which" | "while" | "whilst" | "plus"
            | "although" | "though" | "however" | "whereas" | "where" | "also" => {
                (1, Joint::And, false)
            }
            _ => return None,
        })
    }

    /// Reads one element at `i` into the frame; the tokens it took (0: the
    /// token is left unplaced).
    fn element(&mut self, i: usize, f: &mut Frame) -> usize {
        if let Some(n) = self.quoted(i, f) {
            return n;
        }
        if let Some(n) = self.segment(i, f) {
            return n;
        }
        if let Some(n) = self.tag(i, f) {
            return n;
        }
        if let Some(n) = self.catalogue(i, f) {
            return n;
        }
        if let Some(n) = self.time(i, f) {
            return n;
        }
        if let Some(n) = self.quantity_element(i, f) {
            return n;
        }
        if let Some(n) = self.negation(i, f) {
            return n;
        }
        if let Some(n) = self.phrase(i, f) {
            return n;
        }
        if let Some(n) = self.place(i, f) {
            return n;
        }
        if let Some(n) = self.noun(i, f) {
            return n;
        }
        if FILLER.contains(&self.word(i)) || matches!(self.symbol(i), Some('\'' | '’' | '-' | '"'))
        {
            self.filler.insert(i);
            return 1;
        }
        0
    }

    fn quoted(&mut self, i: usize, f: &mut Frame) -> Option<usize> {
        let Some(Kind::Quoted(text)) = self.toks.get(i).map(|t| t.kind.clone()) else {
            return None;
        };
        if text.is_empty() {
            return None;
        }
        let key = key_of(&text);
        if let Some(s) = self
            .vocabulary
            .segments
            .iter()
            .find(|s| s.eq_ignore_ascii_case(&text))
        {
            f.extras
                .push((Rule::InSegment { segment: s.clone() }, vec![i]));
            return Some(1);
        }
        if let Some(p) = self.names.products.iter().find(|p| p.0 == key).cloned() {
            f.item = Some((Item::Product(p.1), vec![i]));
            return Some(1);
        }
        if let Some(p) = self.vocabulary.products.iter().find(|p| {
            p.sku
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(&text))
                || p.id
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(&text))
        }) {
            if let Some(k) = p.key() {
                f.item = Some((Item::Product(k.to_owned()), vec![i]));
                return Some(1);
            }
        }
        if let Some(c) = self
            .names
            .categories
            .iter()
            .find(|c| same_noun(&c.0, &key))
            .cloned()
        {
            f.item = Some((Item::Category(c.1), vec![i]));
            return Some(1);
        }
        if let Some(t) = self
            .vocabulary
            .tags
            .iter()
            .find(|t| t.eq_ignore_ascii_case(&text))
        {
            f.extras.push((Rule::Tag { tag: t.clone() }, vec![i]));
            return Some(1);
        }
        f.quoted = Some((text, vec![i]));
        Some(1)
    }

    /// The longest run of words from `i` (up to `max`) whose joined key
    /// matches; (tokens, value).
    fn longest(
        &self,
        i: usize,
        max: usize,
        table: &[(String, String)],
        plural: bool,
    ) -> Option<(usize, String)> {
        for len in (1..=max).rev() {
            let inner_symbol =
                |t: &Token| matches!(t.kind, Kind::Symbol('&' | '-' | '\'' | '’' | '+' | '/'));
            if (i..i + len).any(|k| {
                self.toks.get(k).is_none_or(|t| {
                    t.kind != Kind::Word
                        && !matches!(t.kind, Kind::Number(_))
                        && !(k > i && k + 1 < i + len && inner_symbol(t))
                })
            }) {
                continue;
            }
            let key: String = (i..i + len)
                .filter_map(|k| {
                    let t = &self.toks[k];
                    match t.kind {
                        Kind::Word => Some(t.word.clone()),
                        Kind::Number(_) => Some(t.raw.to_lowercase()),
                        _ => None,
                    }
                })
                .collect();
            if let Some(hit) = table
                .iter()
                .find(|(k, _)| *k == key || (plural && same_noun(k, &key)))
            {
                return Some((len, hit.1.clone()));
            }
        }
        None
    }

    fn segment(&mut self, i: usize, f: &mut Frame) -> Option<usize> {
        if let Some((len, name)) = self
            .longest(i, 5, &self.names.segments, true)
            .filter(|(len, _)| !matches!(self.word(i + len), "tag" | "tagged" | "tags" | "label"))
        {
            f.extras
                .push((Rule::InSegment { segment: name }, (i..i + len).collect()));
            return Some(len);
        }
        // RFM groups
        for (words, group) in [
            (&["champions"][..], "Champions"),
            (&["champion"][..], "Champions"),
            (&["loyal"][..], "Loyal"),
            (&["needs", "attention"][..], "Needs Attention"),
            (&["need", "attention"][..], "Needs Attention"),
            (&["at", "risk"][..], "At Risk"),
            (&["atrisk"][..], "At Risk"),
        ] {
            if self.words_at(i, words) {
                let mut len = words.len();
                if self.word(i).starts_with("rfm") {
                    len += 1;
                }
                f.extras.push((
                    Rule::Rfm {
                        field: RfmField::Group,
                        op: CmpOp::Eq,
                        value: Literal::String(group.to_owned()),
                    },
                    (i..i + len).collect(),
                ));
                return Some(len);
            }
        }
        None
    }

    fn tag(&mut self, i: usize, f: &mut Frame) -> Option<usize> {
        let lead = match self.word(i) {
            "tagged" | "tag" | "tags" | "labeled" | "label" => 1,
            "with" if matches!(self.word(i + 1), "tag" | "tags" | "label") => 2,
            "with" if self.word(i + 1) == "the" && matches!(self.word(i + 2), "tag" | "label") => 3,
            _ => 0,
        };
        if lead > 0 {
            let mut j = i + lead;
            while matches!(self.word(j), "as" | "with" | "the" | "a" | "of") {
                j += 1;
            }
            if let Some(Kind::Quoted(text)) = self.toks.get(j).map(|t| t.kind.clone()) {
                if !text.is_empty() {
                    let tag = self
                        .vocabulary
                        .tags
                        .iter()
                        .find(|t| t.eq_ignore_ascii_case(&text))
                        .cloned()
                        .unwrap_or(text);
                    f.extras.push((Rule::Tag { tag }, (i..=j).collect()));
                    return Some(j + 1 - i);
                }
            }
            if let Some((len, tag)) = self.longest(j, 4, &self.names.tags, true) {
                f.extras.push((Rule::Tag { tag }, (i..j + len).collect()));
                return Some(j + len - i);
            }
            if let Some(t) = self.toks.get(j) {
                if t.kind == Kind::Word
                    && !FILLER.contains(&t.word.as_str())
                    && self.connector(j).is_none()
                {
                    let tag = t.raw.to_lowercase();
                    f.extras.push((Rule::Tag { tag }, (i..=j).collect()));
                    return Some(j + 1 - i);
                }
            }
            return None;
        }
        if let Some((len, tag)) = self.longest(i, 4, &self.names.tags, true) {
            let mut n = len;
            let tagged = matches!(self.word(i + n), "tag" | "tagged" | "label");
            if tagged {
                n += 1;
            } else if len == 1 && self.grammar_word(i) {
                return None;
            }
            f.extras.push((Rule::Tag { tag }, (i..i + n).collect()));
            return Some(n);
        }
        None
    }

    /// A word the grammar itself gives a meaning to.
    fn grammar_word(&self, i: usize) -> bool {
        let w = self.word(i);
        lexicon::KNOWN_WORDS.contains(&w) || GRAMMAR_KNOWN.contains(&w) || FILLER.contains(&w)
    }

    fn catalogue(&mut self, i: usize, f: &mut Frame) -> Option<usize> {
        if let Some((len, value)) = self.longest(i, 5, &self.names.products, true) {
            f.item = Some((Item::Product(value), (i..i + len).collect()));
            return Some(len);
        }
        if let Some(t) = self.toks.get(i) {
            if t.kind == Kind::Word || matches!(t.kind, Kind::Number(_)) {
                let raw = t.raw.clone();
                if let Some(p) = self.vocabulary.products.iter().find(|p| {
                    p.sku
                        .as_deref()
                        .is_some_and(|s| s.eq_ignore_ascii_case(&raw))
                        || (p
                            .id
                            .as_deref()
                            .is_some_and(|s| s.eq_ignore_ascii_case(&raw))
                            && t.kind == Kind::Word)
                }) {
                    if let Some(k) = p.key() {
                        f.item = Some((Item::Product(k.to_owned()), vec![i]));
                        return Some(1);
                    }
                }
            }
        }
        if let Some((len, value)) = self.longest(i, 5, &self.names.categories, true) {
            f.item = Some((Item::Category(value), (i..i + len).collect()));
            return Some(len);
        }
        None
    }

    /// Time phrases that need no comparison word.
    fn time(&mut self, i: usize, f: &mut Frame) -> Option<usize> {
        let (window, len) = self.window_at(i)?;
        f.window = Some((window, (i..i + len).collect()));
        Some(len)
    }

    fn window_at(&mut self, i: usize) -> Option<(Window, usize)> {
        let w = self.word(i).to_owned();
        match w.as_str() {
            "today" => return Some((window_days(1, (TimeUnit::Days, 1), false)?, 1)),
            "yesterday" => return Some((window_days(2, (TimeUnit::Days, 1), false)?, 1)),
            "recently" | "lately" => {
                return Some((window_days(30, (TimeUnit::Days, 1), false)?, 1))
            }
            "ytd" => return self.since_date(self.year_start(), 1),
            _ => {}
        }
        if self.words_at(i, &["year", "to", "date"]) {
            return self.since_date(self.year_start(), 3);
        }
        // "in 2026", "during 2026": this year only (windows reach back
        // from now, so an earlier year cannot be one)
        if matches!(w.as_str(), "in" | "during") {
            let year = self.number(i + 1).and_then(|d| i32::try_from(d).ok());
            if year == Some(self.today.year()) {
                return self.since_date(self.year_start(), 2);
            }
        }
        if w == "since" {
            return self.since(i);
        }
        if w == "this" || (w == "so" && self.word(i + 1) == "far" && self.word(i + 2) == "this") {
            let j = if w == "this" { i + 1 } else { i + 3 };
            if self.word(j) == "past" {
                if let Some(unit) = time_unit(self.word(j + 1)) {
                    return Some((window_days(1, unit, false)?, j + 2 - i));
                }
            }
            let start = match self.word(j) {
                "year" => self.year_start(),
                "month" => self.today.with_day(1)?,
                "week" => {
                    self.today
                        - chrono::Days::new(u64::from(self.today.weekday().num_days_from_monday()))
                }
                "quarter" => {
                    let m = (self.today.month0() / 3) * 3 + 1;
                    NaiveDate::from_ymd_opt(self.today.year(), m, 1)?
                }
                _ => return None,
            };
            return self.since_date(start, j + 1 - i);
        }
        // [in|within|during|over|for] [the] [last|past|previous] [N] unit
        let mut j = i;
        let prefix = matches!(
            w.as_str(),
            "in" | "within" | "during" | "over" | "for" | "from"
        );
        if prefix {
            j += 1;
        }
        if self.word(j) == "the" {
            j += 1;
        }
        let last = matches!(
            self.word(j),
            "last" | "past" | "previous" | "recent" | "latest"
        );
        if last {
            j += 1;
        }
        if !prefix && !last {
            return None;
        }
        let (amount, n) = self.small_number(j).unwrap_or((1, 0));
        let explicit = n > 0;
        j += n;
        let unit = time_unit(self.word(j))?;
        j += 1;
        if !last && !explicit {
            return None;
        }
        if matches!(self.word(j), "ago" | "back") {
            if !last {
                // "over 6 months ago", "for 2 years ago": a comparison
                return None;
            }
            // "in the last 3 days ago": read as within
            j += 1;
        }
        Some((window_days(amount, unit, false)?, j - i))
    }

    fn year_start(&self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.today.year(), 1, 1).unwrap_or(self.today)
    }

    fn since_date(&mut self, start: NaiveDate, len: usize) -> Option<(Window, usize)> {
        let days = (self.today - start).num_days().max(1);
        let days = u32::try_from(days).ok()?;
        Some((window_days(days, (TimeUnit::Days, 1), false)?, len))
    }

    /// `since January`, `since March 3`, `since 2024`, `since 2 weeks ago`,
    /// `since last month`, `since the start of the year`.
    fn since(&mut self, i: usize) -> Option<(Window, usize)> {
        let mut j = i + 1;
        // "since 1 January", "since the 3rd of March"
        let mut day_first = None;
        let mut k = j;
        if self.word(k) == "the" {
            k += 1;
        }
        if let Some(d) = self
            .number(k)
            .and_then(|d| u32::try_from(d).ok())
            .filter(|d| (1..=31).contains(d))
        {
            let mut m = k + 1;
            if matches!(self.word(m), "st" | "nd" | "rd" | "th") {
                m += 1;
            }
            if self.word(m) == "of" {
                m += 1;
            }
            if month_of(self.word(m)).is_some() {
                day_first = Some(d);
                j = m;
            }
        }
        if let Some(m) = month_of(self.word(j)) {
            j += 1;
            let mut day = day_first.unwrap_or(1);
            if let Some(d) = self
                .number(j)
                .and_then(|d| u32::try_from(d).ok())
                .filter(|d| (1..=31).contains(d))
            {
                day = d;
                j += 1;
                if matches!(self.word(j), "st" | "nd" | "rd" | "th") {
                    j += 1;
                }
            }
            let mut year = self.today.year();
            if let Some(y) = self
                .number(j)
                .and_then(|d| i32::try_from(d).ok())
                .filter(|y| (1900..=2200).contains(y))
            {
                year = y;
                j += 1;
            } else if m > self.today.month() || (m == self.today.month() && day > self.today.day())
            {
                year -= 1;
            }
            let start = NaiveDate::from_ymd_opt(year, m, day)?;
            if start > self.today {
                return None;
            }
            return self.since_date(start, j - i);
        }
        if let Some(y) = self
            .number(j)
            .and_then(|d| i32::try_from(d).ok())
            .filter(|y| (1900..=2200).contains(y))
        {
            let start = NaiveDate::from_ymd_opt(y, 1, 1)?;
            if start > self.today {
                return None;
            }
            return self.since_date(start, j + 1 - i);
        }
        if matches!(self.word(j), "last" | "past") {
            let unit = time_unit(self.word(j + 1))?;
            return Some((window_days(1, unit, false)?, j + 2 - i));
        }
        if self.words_at(j, &["the", "start", "of", "the", "year"])
            || self.words_at(j, &["the", "beginning", "of", "the", "year"])
        {
            return self.since_date(self.year_start(), j + 5 - i);
        }
        if self.words_at(j, &["the", "start", "of", "the", "month"])
            || self.words_at(j, &["the", "beginning", "of", "the", "month"])
        {
            return self.since_date(self.today.with_day(1)?, j + 5 - i);
        }
        let (amount, n) = self.small_number(j)?;
        let unit = time_unit(self.word(j + n))?;
        let mut len = j + n + 1 - i;
        if self.word(j + n + 1) == "ago" {
            len += 1;
        }
        Some((window_days(amount, unit, false)?, len))
    }

    /// A whole number written as digits or a word: (value, tokens).
    fn small_number(&self, i: usize) -> Option<(u32, usize)> {
        if let Some(d) = self.number(i) {
            if d.fract().is_zero() {
                return u32::try_from(d).ok().map(|n| (n, 1));
            }
            return None;
        }
        if self.words_at(i, &["a", "couple", "of"]) {
            return Some((2, 3));
        }
        if self.words_at(i, &["a", "couple"]) || self.words_at(i, &["couple", "of"]) {
            return Some((2, 2));
        }
        if self.words_at(i, &["a", "dozen"]) {
            return Some((12, 2));
        }
        let w = self.word(i);
        let (n, len) = lexicon::number_word(w).map(|n| (n, 1))?;
        // "a hundred", "two thousand"
        match self.word(i + len) {
            "hundred" if n < 100 => Some((n * 100, len + 1)),
            "thousand" if n <= 1000 => Some((n * 1000, len + 1)),
            _ => Some((n, len)),
        }
    }

    fn comparator(&self, i: usize) -> Option<(CmpOp, usize)> {
        match (self.symbol(i), self.symbol(i + 1)) {
            (Some('>'), Some('=')) => return Some((CmpOp::Ge, 2)),
            (Some('<'), Some('=')) => return Some((CmpOp::Le, 2)),
            (Some('>'), _) => return Some((CmpOp::Gt, 1)),
            (Some('<'), _) => return Some((CmpOp::Lt, 1)),
            (Some('≥'), _) => return Some((CmpOp::Ge, 1)),
            (Some('≤'), _) => return Some((CmpOp::Le, 1)),
            (Some('='), _) => return Some((CmpOp::Eq, 1)),
            _ => {}
        }
        COMPARATORS
            .iter()
            .find(|(words, _)| self.words_at(i, words))
            .map(|(words, op)| (*op, words.len()))
    }

    /// `$100`, `100 EUR`, `€50`, `1.5k`, `three`: (value, currency, tokens).
    fn amount(&self, i: usize) -> Option<(Decimal, Option<&'static str>, usize, bool)> {
        let mut j = i;
        let mut currency = None;
        if let Some(Kind::Currency(c)) = self.toks.get(j).map(|t| &t.kind) {
            currency = Some(*c);
            j += 1;
        }
        if currency.is_none() {
            if let Some(c) = currency_word(self.word(j)).filter(|_| self.number(j + 1).is_some()) {
                currency = Some(c);
                j += 1;
            }
        }
        let (value, digits) = if let Some(d) = self.number(j).filter(|d| d.scale() <= 8) {
            j += 1;
            (d, true)
        } else if currency.is_none() {
            let (n, len) = self.small_number(j)?;
            j += len;
            (Decimal::from(n), false)
        } else {
            return None;
        };
        if currency.is_none() {
            if let Some(Kind::Currency(c)) = self.toks.get(j).map(|t| &t.kind) {
                currency = Some(*c);
                j += 1;
            } else if let Some(c) = currency_word(self.word(j)) {
                currency = Some(c);
                j += 1;
            }
        }
        Some((value, currency, j - i, digits))
    }

    fn quantity(&self, i: usize) -> Option<Quantity> {
        let mut j = i;
        let mut op = None;
        let mut upper = None;
        let between = matches!(self.word(j), "between");
        if between {
            j += 1;
        } else if let Some((o, n)) = self.comparator(j) {
            op = Some(o);
            j += n;
        }
        if let Some(times) = lexicon::times_word(self.word(j)) {
            // "once", "at least twice", "twice or more"
            let mut k = j + 1;
            let mut op = op;
            suffix_of(self, &mut k, &mut op);
            return Some(Quantity {
                op,
                value: Decimal::from(times),
                upper: None,
                currency: None,
                unit: Unit::Times,
                ago: false,
                len: k - i,
            });
        }
        let (value, mut currency, n, digits) = self.amount(j)?;
        let word_number = !digits;
        let first_word = self.word(j).to_owned();
        j += n;
        // "2-3 times", "100 to 200 dollars": a range
        let range_word = matches!(self.word(j), "to" | "or");
        if !between && digits && (self.symbol(j) == Some('-') || range_word) {
            if let Some((high, c2, n2, true)) = self.amount(j + 1).filter(|a| a.0 > value) {
                currency = currency.or(c2);
                upper = Some(high);
                op = Some(CmpOp::Ge);
                j += 1 + n2;
            }
        }
        if between {
            if !(matches!(self.word(j), "and" | "to") || self.symbol(j) == Some('-')) {
                return None;
            }
            let (high, c2, n2, _) = self.amount(j + 1)?;
            currency = currency.or(c2);
            upper = Some(high);
            j += 1 + n2;
            op = Some(CmpOp::Ge);
        }
        suffix_of(self, &mut j, &mut op);
        let mut unit = Unit::None;
        let mut ago = false;
        let w = self.word(j).to_owned();
        if currency.is_none() {
            if let Some(u) = time_unit(&w) {
                unit = Unit::Time(u.0, u.1);
                j += 1;
                if matches!(self.word(j), "ago" | "back" | "before" | "since") {
                    ago = true;
                    j += 1;
                } else if self.words_at(j, &["or", "more", "ago"])
                    || self.words_at(j, &["or", "longer", "ago"])
                {
                    ago = true;
                    j += 3;
                }
            } else {
                let mut k = j;
                if matches!(
                    self.word(k),
                    "different" | "separate" | "more" | "other" | "paid"
                ) {
                    k += 1;
                }
                let unit_here = match self.word(k) {
                    "times" | "time" | "x" | "occasions" => Some(Unit::Times),
                    "orders" | "order" | "purchases" | "purchase" | "items" | "products"
                    | "transactions" => Some(Unit::Orders),
                    "emails" | "email" | "newsletters" | "newsletter" | "mails" | "campaigns"
                    | "messages" => Some(Unit::Emails),
                    _ => None,
                };
                if let Some(u) = unit_here {
                    unit = u;
                    j = k + 1;
                    suffix_of(self, &mut j, &mut op);
                }
            }
        }
        // "50% of emails" is a share, which no rule can hold
        if self.symbol(j) == Some('%') || self.word(j) == "percent" {
            return None;
        }
        // "an email", "a month" without a count are not quantities; "one
        // order" is.
        if word_number
            && op.is_none()
            && matches!(first_word.as_str(), "a" | "an")
            && !matches!(unit, Unit::Time(..))
        {
            return None;
        }
        if word_number && unit == Unit::None && op.is_none() {
            return None;
        }
        if word_number && unit == Unit::None && currency.is_none() && first_word.len() <= 2 {
            return None;
        }
        Some(Quantity {
            op,
            value: normalize_decimal(value),
            upper: upper.map(normalize_decimal),
            currency,
            unit,
            ago,
            len: j - i,
        })
    }

    fn quantity_element(&mut self, i: usize, f: &mut Frame) -> Option<usize> {
        let q = self.quantity(i)?;
        let toks: Toks = (i..i + q.len).collect();
        if let Some(c) = q.currency {
            self.note_currency(c);
        }
        let whole = |d: Decimal| {
            (d.fract().is_zero() && d >= Decimal::ZERO)
                .then(|| u32::try_from(d).ok())
                .flatten()
        };
        match q.unit {
            Unit::Time(unit, factor) => {
                let amount = whole(q.value)?;
                // "more than 90 days ago" → before; "less than 30 days ago" → within
                let before = q.ago && !matches!(q.op, Some(CmpOp::Lt | CmpOp::Le));
                f.window = Some((window_days(amount, (unit, factor), before)?, toks));
                // "between 30 and 90 days ago": and within the farther edge
                if let (Some(high), true) = (q.upper, q.ago) {
                    f.window_upper = window_days(whole(high)?, (unit, factor), false);
                }
            }
            Unit::Times | Unit::Orders | Unit::Emails => {
                let times = whole(q.value)?;
                let op = q.op.unwrap_or(CmpOp::Eq);
                if let Some(high) = q.upper {
                    let high = whole(high)?;
                    // "between 2 and 5 times": two counts, both kept
                    f.count = Some((
                        Count {
                            op: CmpOp::Ge,
                            times,
                        },
                        toks.clone(),
                    ));
                    f.count_upper = Some(Count {
                        op: CmpOp::Le,
                        times: high,
                    });
                } else {
                    f.count = Some((Count { op, times }, toks.clone()));
                }
                match q.unit {
                    Unit::Orders => f.order_noun.extend(toks),
                    Unit::Emails => f.email_noun.extend(toks),
                    _ => {}
                }
                f.after_order_noun = q.unit == Unit::Orders;
                return Some(q.len);
            }
            Unit::None => {
                let per_order = f.after_order_noun;
                let op = q.op.unwrap_or(if q.currency.is_some() {
                    CmpOp::Ge
                } else {
                    CmpOp::Eq
                });
                if let Some(high) = q.upper {
                    f.amounts.push(Amount {
                        op: CmpOp::Ge,
                        value: q.value,
                        money: q.currency.is_some(),
                        per_order,
                        tokens: toks.clone(),
                    });
                    f.amounts.push(Amount {
                        op: CmpOp::Le,
                        value: high,
                        money: q.currency.is_some(),
                        per_order,
                        tokens: Vec::new(),
                    });
                } else {
                    f.amounts.push(Amount {
                        op,
                        value: q.value,
                        money: q.currency.is_some(),
                        per_order,
                        tokens: toks,
                    });
                }
            }
        }
        f.after_order_noun = false;
        Some(q.len)
    }

    fn note_currency(&mut self, given: &str) {
        let Some(store) = self.vocabulary.currency.as_deref() else {
            return;
        };
        let dollar = |c: &str| matches!(c, "USD" | "CAD" | "AUD" | "NZD" | "SGD" | "HKD" | "MXN");
        if !(given.eq_ignore_ascii_case(store) || given == "USD" && dollar(store)) {
            let note = format!("amounts are compared in the store's currency ({store}); an amount was given in {given}");
            if !self.notes.contains(&note) {
                self.notes.push(note);
            }
        }
    }

    fn negation(&mut self, i: usize, f: &mut Frame) -> Option<usize> {
        let n = match self.word(i) {
            "not" | "no" | "never" | "havent" | "hasnt" | "hadnt" | "didnt" | "dont" | "doesnt"
            | "isnt" | "arent" | "wasnt" | "werent" | "cannot" | "cant" | "wont" | "without"
            | "non" | "neither" | "none" | "zero" | "nothing" | "outside" | "excluding"
            | "except" | "excl" => 1,
            "have" | "has" | "did" | "do" | "does" | "had" if self.word(i + 1) == "not" => 2,
            _ => return None,
        };
        if matches!(self.word(i), "zero") && self.quantity(i).is_some() {
            return None;
        }
        // one negation per phrase ("have not" is one)
        f.negations.push(i + n - 1);
        self.filler.extend(i..i + n - 1);
        Some(n)
    }

    /// Verbs, metrics and multi-word phrases.
    fn phrase(&mut self, i: usize, f: &mut Frame) -> Option<usize> {
        type Act = fn(&mut Frame, Toks);
        let phrases: &[(&[&str], Act)] = &[
            (&["average", "order", "value"], |f, t| f.average = t),
            (&["avg", "order", "value"], |f, t| f.average = t),
            (&["average", "order", "size"], |f, t| f.average = t),
            (&["average", "order"], |f, t| f.average = t),
            (&["average", "spend"], |f, t| f.average = t),
            (&["average", "basket"], |f, t| f.average = t),
            (&["aov"], |f, t| f.average = t),
            (&["customer", "lifetime", "value"], |f, t| {
                set_verb(f, Verb::Spend, t)
            }),
            (&["lifetime", "value"], |f, t| set_verb(f, Verb::Spend, t)),
            (&["lifetime", "spend"], |f, t| set_verb(f, Verb::Spend, t)),
            (&["ltv"], |f, t| set_verb(f, Verb::Spend, t)),
            (&["clv"], |f, t| set_verb(f, Verb::Spend, t)),
            (&["total", "spend"], |f, t| set_verb(f, Verb::Spend, t)),
            (&["total", "spent"], |f, t| set_verb(f, Verb::Spend, t)),
            (&["total", "spending"], |f, t| set_verb(f, Verb::Spend, t)),
            (&["revenue"], |f, t| set_verb(f, Verb::Spend, t)),
            (&["last", "seen"], |f, t| {
                f.last_seen = t.clone();
                set_verb(f, Verb::Visit, t)
            }),
            (&["last", "visited"], |f, t| set_verb(f, Verb::Visit, t)),
            (&["last", "visit"], |f, t| set_verb(f, Verb::Visit, t)),
            (&["last", "active"], |f, t| set_verb(f, Verb::Visit, t)),
            (&["last", "activity"], |f, t| set_verb(f, Verb::Visit, t)),
            (&["most", "recent", "order"], |f, t| {
                moment(f, Moment::Last, t)
            }),
            (&["most", "recent", "purchase"], |f, t| {
                moment(f, Moment::Last, t)
            }),
            (&["latest", "order"], |f, t| moment(f, Moment::Last, t)),
            (&["latest", "purchase"], |f, t| moment(f, Moment::Last, t)),
            (&["last", "order"], |f, t| moment(f, Moment::Last, t)),
            (&["last", "ordered"], |f, t| moment(f, Moment::Last, t)),
            (&["last", "purchase"], |f, t| moment(f, Moment::Last, t)),
            (&["last", "purchased"], |f, t| moment(f, Moment::Last, t)),
            (&["last", "bought"], |f, t| moment(f, Moment::Last, t)),
            (&["last", "shopped"], |f, t| moment(f, Moment::Last, t)),
            (&["first", "order"], |f, t| moment(f, Moment::First, t)),
            (&["first", "ordered"], |f, t| moment(f, Moment::First, t)),
            (&["first", "purchase"], |f, t| moment(f, Moment::First, t)),
            (&["first", "purchased"], |f, t| moment(f, Moment::First, t)),
            (&["first", "bought"], |f, t| moment(f, Moment::First, t)),
            (&["first", "time", "buyers"], |f, t| first_timer(f, t)),
            (&["first", "time", "buyer"], |f, t| first_timer(f, t)),
            (&["first", "time", "customers"], |f, t| first_timer(f, t)),
            (&["first", "time", "customer"], |f, t| first_timer(f, t)),
            (&["first", "time", "shoppers"], |f, t| first_timer(f, t)),
            (&["one", "time", "buyers"], |f, t| first_timer(f, t)),
            (&["one", "time", "customers"], |f, t| first_timer(f, t)),
            (&["repeat"], |f, t| repeat(f, t)),
            (&["returning"], |f, t| repeat(f, t)),
            (&["multiple", "times"], |f, t| repeat(f, t)),
            (&["more", "than", "once"], |f, t| repeat(f, t)),
            (&["several", "times"], |f, t| {
                f.count = Some((
                    Count {
                        op: CmpOp::Ge,
                        times: 3,
                    },
                    t,
                ))
            }),
            (&["many", "times"], |f, t| {
                f.count = Some((
                    Count {
                        op: CmpOp::Ge,
                        times: 3,
                    },
                    t,
                ))
            }),
            (&["added", "to"], |f, t| set_verb(f, Verb::Add, t)),
            (&["add", "to"], |f, t| set_verb(f, Verb::Add, t)),
            (&["adds", "to"], |f, t| set_verb(f, Verb::Add, t)),
            (&["put", "in"], |f, t| set_verb(f, Verb::Add, t)),
            (&["put", "into"], |f, t| set_verb(f, Verb::Add, t)),
            (&["signed", "up"], |f, t| set_verb(f, Verb::Subscribe, t)),
            (&["sign", "up"], |f, t| set_verb(f, Verb::Subscribe, t)),
            (&["signup"], |f, t| set_verb(f, Verb::Subscribe, t)),
            (&["opted", "in"], |f, t| set_verb(f, Verb::Subscribe, t)),
            (&["opt", "in"], |f, t| set_verb(f, Verb::Subscribe, t)),
            (&["optin"], |f, t| set_verb(f, Verb::Subscribe, t)),
            (&["opted", "out"], |f, t| set_verb(f, Verb::Unsubscribe, t)),
            (&["opt", "out"], |f, t| set_verb(f, Verb::Unsubscribe, t)),
            (&["optout"], |f, t| set_verb(f, Verb::Unsubscribe, t)),
            (&["checked", "out"], |f, t| set_verb(f, Verb::Buy, t)),
            (&["looked", "at"], |f, t| set_verb(f, Verb::View, t)),
            (&["came", "back"], |f, t| set_verb(f, Verb::Visit, t)),
            (&["come", "back"], |f, t| set_verb(f, Verb::Visit, t)),
            (&["got", "a", "refund"], |f, t| set_verb(f, Verb::Refund, t)),
            (&["email", "address"], |f, t| f.email_noun = t),
            (&["e", "mail"], |f, t| f.email_noun = t),
            (&["e", "mails"], |f, t| f.email_noun = t),
        ];
        for (words, act) in phrases {
            if self.words_at(i, words) {
                act(f, (i..i + words.len()).collect());
                if !matches!(words[0], "repeat" | "returning" | "email" | "e") {
                    f.after_order_noun = matches!(words.last(), Some(&"order" | &"purchase"));
                }
                return Some(words.len());
            }
        }
        let verb = match self.word(i) {
            "bought" | "buy" | "buys" | "buying" | "purchased" | "purchasing" | "ordered"
            | "ordering" | "shopped" | "converted" | "purchasers" | "purchaser" => Verb::Buy,
            "spent" | "spend" | "spends" | "spending" | "spenders" | "spender" | "paid" => {
                Verb::Spend
            }
            "opened" | "open" | "opens" | "opening" | "read" | "openers" | "opener" => {
                Verb::Email(EmailAction::Opened)
            }
            "clicked" | "click" | "clicks" | "clicking" | "clickers" | "clicker" | "tapped" => {
                Verb::Email(EmailAction::Clicked)
            }
            "received" | "receive" | "receives" | "receiving" | "sent" | "delivered" | "gotten" => {
                Verb::Email(EmailAction::Received)
            }
            "got" if self.email_ahead(i) => Verb::Email(EmailAction::Received),
            "visited" | "visit" | "visits" | "visiting" | "visitors" | "active" | "seen"
            | "browsed"
                if !self.item_ahead(i) =>
            {
                Verb::Visit
            }
            "inactive" | "dormant" | "lapsed" => {
                f.negations.push(i);
                set_verb(f, Verb::Visit, Vec::new());
                return Some(1);
            }
            "viewed" | "view" | "views" | "viewing" | "browsed" | "browse" | "browsing" | "saw"
            | "visited" | "visit" => Verb::View,
            "added" | "add" | "carted" => Verb::Add,
            "abandoned" | "abandon" | "abandons" | "abandoning" | "abandoners" | "left" => {
                Verb::Abandon
            }
            "started" | "began" | "initiated" | "begun" | "reached" if self.checkout_ahead(i) => {
                Verb::StartCheckout
            }
            "subscribed" | "subscribe" | "subscribes" | "subscribers" | "subscriber" | "joined" => {
                Verb::Subscribe
            }
            "unsubscribed" | "unsubscribe" | "unsubscribes" | "unsubscribers" => Verb::Unsubscribe,
            "refunded" | "refund" | "refunds" => Verb::Refund,
            "canceled" | "cancel" | "cancels" | "cancellation" | "cancellations"
            | "cancelation" => Verb::Cancel,
            "fulfilled" | "shipped" => Verb::Fulfil,
            "bounced" | "bounce" | "bounces" => Verb::Bounce,
            _ => return None,
        };
        set_verb(f, verb, vec![i]);
        f.after_order_noun = false;
        Some(1)
    }

    fn ahead(&self, i: usize, test: impl Fn(&str) -> bool) -> bool {
        (i + 1..i + 5).any(|k| test(self.word(k)))
    }

    fn email_ahead(&self, i: usize) -> bool {
        self.ahead(i, |w| {
            matches!(
                w,
                "email" | "emails" | "newsletter" | "newsletters" | "campaign"
            )
        })
    }

    fn checkout_ahead(&self, i: usize) -> bool {
        self.ahead(i, |w| matches!(w, "checkout" | "checkouts" | "check"))
    }

    fn item_ahead(&self, i: usize) -> bool {
        (i + 1..i + 4).any(|k| {
            self.longest(k, 5, &self.names.categories, true).is_some()
                || self.longest(k, 5, &self.names.products, true).is_some()
                || matches!(self.word(k), "product" | "products" | "page" | "pages")
                    && !matches!(self.word(k - 1), "the" | "our")
        }) && !matches!(self.word(i + 1), "the" | "our" | "in" | "within" | "since")
    }

    fn place(&mut self, i: usize, f: &mut Frame) -> Option<usize> {
        let mut j = i;
        let lead = matches!(
            self.word(i),
            "from"
                | "in"
                | "based"
                | "living"
                | "located"
                | "live"
                | "lives"
                | "residing"
                | "resident"
        );
        if lead {
            j += 1;
            while matches!(self.word(j), "in" | "the" | "from") {
                j += 1;
            }
        }
        if let Some((len, code)) = self.country(j) {
            let n = j + len - i;
            f.extras
                .push((trait_eq("country", code), (i..i + n).collect()));
            return Some(n);
        }
        if let Some((len, city)) = self.city(j, lead) {
            let n = j + len - i;
            f.extras
                .push((trait_eq("city", &city), (i..i + n).collect()));
            return Some(n);
        }
        None
    }

    fn country(&self, i: usize) -> Option<(usize, &'static str)> {
        if let Some(t) = self.toks.get(i) {
            let capitals = t.raw.len() == 2 && t.raw.chars().all(|c| c.is_ascii_uppercase());
            if let Some((code, _)) = COUNTRIES.iter().find(|(c, _)| capitals && *c == t.raw) {
                return Some((1, code));
            }
        }
        for len in (1..=4).rev() {
            if (i..i + len).any(|k| self.toks.get(k).is_none_or(|t| t.kind != Kind::Word)) {
                continue;
            }
            let words: Vec<&str> = (i..i + len).map(|k| self.toks[k].word.as_str()).collect();
            let phrase = words.join(" ");
            for (code, names) in COUNTRIES {
                if names.iter().any(|n| same_noun(n, &phrase)) {
                    // short codes ("US", "AUS", "GB") only in capitals: "us"
                    // is a pronoun, "aus" German
                    let code_like =
                        len == 1 && phrase.len() <= 3 && !matches!(phrase.as_str(), "uk" | "usa");
                    if code_like && self.toks[i].raw.to_uppercase() != self.toks[i].raw {
                        continue;
                    }
                    return Some((len, code));
                }
            }
        }
        None
    }

    fn city(&self, i: usize, lead: bool) -> Option<(usize, String)> {
        for len in (1..=3).rev() {
            if (i..i + len).any(|k| self.toks.get(k).is_none_or(|t| t.kind != Kind::Word)) {
                continue;
            }
            let raw: Vec<String> = (i..i + len)
                .map(|k| self.toks[k].raw.to_lowercase())
                .collect();
            let phrase = raw.join(" ");
            if let Some(c) = CITIES.iter().find(|c| c.to_lowercase() == phrase) {
                return Some((len, (*c).to_owned()));
            }
        }
        if !lead {
            return None;
        }
        // Any other capitalised name after "in"/"from": a city.
        let mut len = 0;
        while let Some(t) = self.toks.get(i + len) {
            let capital = t.kind == Kind::Word
                && t.raw.chars().next().is_some_and(char::is_uppercase)
                && t.raw.chars().all(char::is_alphabetic)
                && !self.names.words.contains(&t.word)
                && month_of(&t.word).is_none()
                && !FILLER.contains(&t.word.as_str())
                && lexicon::number_word(&t.word).is_none();
            if !capital || len == 3 {
                break;
            }
            len += 1;
        }
        if len == 0 {
            return None;
        }
        let city: Vec<&str> = (i..i + len).map(|k| self.toks[k].raw.as_str()).collect();
        Some((len, city.join(" ")))
    }

    fn noun(&mut self, i: usize, f: &mut Frame) -> Option<usize> {
        match self.word(i) {
            "order" | "orders" | "purchase" | "purchases" | "buyers" | "buyer" | "transactions"
            | "transaction" => {
                f.order_noun.push(i);
                f.after_order_noun = true;
            }
            "email" | "emails" | "mail" | "mails" | "newsletter" | "newsletters" | "campaign"
            | "campaigns" | "mailing" | "mailings" | "message" | "messages" => f.email_noun.push(i),
            "cart" | "carts" | "basket" | "baskets" | "trolley" => f.cart_noun.push(i),
            "checkout" | "checkouts" => f.checkout_noun.push(i),
            "check" if self.word(i + 1) == "out" => {
                f.checkout_noun.extend([i, i + 1]);
                return Some(2);
            }
            _ => return None,
        }
        Some(1)
    }

    fn unplaced(&self, text: &str) -> Vec<Span> {
        let mut spans: Vec<Span> = Vec::new();
        let mut last_unplaced: Option<usize> = None;
        for (k, t) in self.toks.iter().enumerate() {
            if self.used.contains(&k) || self.filler.contains(&k) {
                continue;
            }
            match (spans.last_mut(), last_unplaced) {
                (Some(s), Some(prev)) if prev + 1 == k => {
                    s.end = t.end;
                    s.text = text[s.start..s.end].to_owned();
                }
                _ => spans.push(Span {
                    start: t.start,
                    end: t.end,
                    text: t.raw.clone(),
                }),
            }
            last_unplaced = Some(k);
        }
        spans
    }

    /// The rule of one clause; marks the tokens it used.
    fn rule_of(&mut self, mut f: Frame) -> Option<Rule> {
        let mut extras = Vec::new();
        for (rule, toks) in std::mem::take(&mut f.extras) {
            self.used.extend(toks);
            extras.push(rule);
        }
        if f.negated() {
            if let Some((
                Count {
                    op: CmpOp::Eq,
                    times: 1,
                },
                toks,
            )) = f.count.clone()
            {
                // "never opened a single email", "haven't bought once": none
                self.use_toks(&toks);
                f.count = None;
            }
        }
        let core = self.core(&mut f).map(|core| match f.count_upper {
            Some(upper) => with_upper(core, upper),
            None => core,
        });
        let core = core.map(|core| match (f.window_upper, &core) {
            (
                Some(window),
                Rule::Metric {
                    metric,
                    test: MetricTest::Window { .. },
                },
            ) => {
                let farther = Rule::Metric {
                    metric: *metric,
                    test: MetricTest::Window { window },
                };
                Rule::And {
                    rules: vec![core, farther],
                }
            }
            _ => core,
        });
        let negated = f.negated();
        let neg_toks: Toks = f
            .negations
            .iter()
            .copied()
            .filter(|k| *k != usize::MAX)
            .collect();
        match core {
            Some(core) => {
                let core = if negated { negate_core(core) } else { core };
                extras.push(core);
                self.used.extend(neg_toks);
                and(extras)
            }
            None => {
                let r = and(extras)?;
                if negated {
                    self.used.extend(neg_toks);
                    Some(not(r))
                } else {
                    Some(r)
                }
            }
        }
    }

    /// "opened the Black Friday email": capitalised words nothing else
    /// took, in one run, name the campaign.
    fn campaign_name(&mut self, unknown: &[usize]) -> Option<String> {
        let (&first, &last) = (unknown.first()?, unknown.last()?);
        let run = last + 1 - first == unknown.len();
        let capitalised = unknown.iter().all(|&k| {
            self.toks[k].kind == Kind::Word
                && self.toks[k]
                    .raw
                    .chars()
                    .next()
                    .is_some_and(char::is_uppercase)
        });
        if !run || !capitalised {
            return None;
        }
        self.used.extend(unknown.iter().copied());
        let words: Vec<&str> = unknown.iter().map(|&k| self.toks[k].raw.as_str()).collect();
        Some(words.join(" "))
    }

    /// A plain whole number in the clause, taken as its count.
    fn bare_count(&mut self, f: &mut Frame) -> Option<Count> {
        let at = f.amounts.iter().position(|a| {
            !a.money && !a.per_order && a.value.fract().is_zero() && !a.tokens.is_empty()
        })?;
        let a = f.amounts.remove(at);
        let times = u32::try_from(a.value).ok()?;
        self.use_toks(&a.tokens);
        Some(Count { op: a.op, times })
    }

    fn use_toks(&mut self, toks: &[usize]) {
        self.used
            .extend(toks.iter().copied().filter(|k| *k != usize::MAX));
    }

    /// The clause's verb (said or implied) with its qualifiers as a rule.
    fn core(&mut self, f: &mut Frame) -> Option<Rule> {
        let verb = match f.verb.clone() {
            Some((v, toks)) => {
                self.use_toks(&toks);
                Some(v)
            }
            None => self.implied_verb(f),
        };
        if !f.average.is_empty() {
            let avg = std::mem::take(&mut f.average);
            if let Some(a) = f.amounts.first().cloned() {
                self.use_toks(&avg);
                self.use_toks(&a.tokens);
                let rules = f
                    .amounts
                    .drain(..)
                    .map(|a| metric(Metric::OrdersAverageValue, a.op, a.value))
                    .collect();
                self.use_toks(&f.order_noun.clone());
                return and(rules);
            }
        }
        let verb = verb?;
        let window = f.window.clone();
        let count = f.count.clone();
        let w = window.as_ref().map(|w| w.0);
        let mut c = count.as_ref().map(|c| c.0);
        let counted = matches!(
            verb,
            Verb::Email(_)
                | Verb::View
                | Verb::Add
                | Verb::StartCheckout
                | Verb::Refund
                | Verb::Cancel
                | Verb::Fulfil
        );
        if c.is_none() && counted {
            // "2 cancelled orders", "opened 3 newsletters": a plain number
            c = self.bare_count(f);
        }
        let use_window = |r: &mut Reader, f: &Frame| {
            if let Some(w) = &f.window {
                r.use_toks(&w.1)
            }
        };
        let use_count = |r: &mut Reader, f: &Frame| {
            if let Some(c) = &f.count {
                r.use_toks(&c.1)
            }
        };
        let item_filters = |r: &mut Reader, f: &Frame| -> Vec<PropertyFilter> {
            let mut out = Vec::new();
            if let Some((item, toks)) = &f.item {
                r.use_toks(toks);
                out.push(match item {
                    Item::Category(c) => filter_eq("category", c),
                    Item::Product(p) => filter_eq(product_key_field(r.vocabulary, p), p),
                });
            } else if let Some((q, toks)) = &f.quoted {
                r.use_toks(toks);
                out.push(filter_eq("name", q));
            }
            out
        };
        let event = |name: &str, count, window, filters| Rule::Performed {
            event: name.to_owned(),
            count,
            window,
            filters,
        };
        Some(match verb {
            Verb::Buy => return self.buy(f),
            Verb::Spend => {
                let amounts: Vec<Amount> = f.amounts.drain(..).collect();
                if amounts.is_empty() {
                    return None;
                }
                if f.window.is_some() {
                    self.notes.push(
                        "total spent counts every order; the time window was left out".into(),
                    );
                }
                for a in &amounts {
                    self.use_toks(&a.tokens);
                }
                self.use_toks(&f.order_noun.clone());
                return and(amounts
                    .iter()
                    .map(|a| metric(Metric::OrdersTotalSpent, a.op, a.value))
                    .collect());
            }
            Verb::Email(action) => {
                use_window(self, f);
                use_count(self, f);
                self.use_toks(&f.email_noun.clone());
                let campaign = match f.quoted.as_ref() {
                    Some(q) => {
                        self.used.extend(q.1.iter().copied());
                        Some(q.0.clone())
                    }
                    None => self.campaign_name(&f.unknown),
                };
                Rule::Email {
                    action,
                    campaign,
                    count: c,
                    window: w,
                }
            }
            Verb::Visit => {
                if f.item.is_some() || f.quoted.is_some() {
                    use_window(self, f);
                    use_count(self, f);
                    let filters = item_filters(self, f);
                    event(PRODUCT_VIEWED, c, w, filters)
                } else {
                    let w = w?;
                    use_window(self, f);
                    self.use_toks(&f.last_seen.clone());
                    Rule::Metric {
                        metric: Metric::LastSeen,
                        test: MetricTest::Window { window: w },
                    }
                }
            }
            Verb::View => {
                use_window(self, f);
                use_count(self, f);
                let filters = item_filters(self, f);
                event(PRODUCT_VIEWED, c, w, filters)
            }
            Verb::Add => {
                use_window(self, f);
                use_count(self, f);
                self.use_toks(&f.cart_noun.clone());
                let filters = item_filters(self, f);
                event(PRODUCT_ADDED, c, w, filters)
            }
            Verb::Abandon => {
                let checkout = !f.checkout_noun.is_empty();
                self.use_toks(&f.cart_noun.clone());
                self.use_toks(&f.checkout_noun.clone());
                let tag = Rule::Tag {
                    tag: if checkout {
                        TAG_IN_CHECKOUT
                    } else {
                        TAG_IN_CART
                    }
                    .to_owned(),
                };
                match w {
                    Some(w) => {
                        use_window(self, f);
                        let name = if checkout {
                            CHECKOUT_STARTED
                        } else {
                            PRODUCT_ADDED
                        };
                        Rule::And {
                            rules: vec![tag, event(name, None, Some(w), Vec::new())],
                        }
                    }
                    None => tag,
                }
            }
            Verb::StartCheckout => {
                use_window(self, f);
                use_count(self, f);
                self.use_toks(&f.checkout_noun.clone());
                event(CHECKOUT_STARTED, c, w, Vec::new())
            }
            Verb::Subscribe | Verb::Unsubscribe => {
                self.use_toks(&f.email_noun.clone());
                let name = if verb == Verb::Subscribe {
                    SUBSCRIBED
                } else {
                    UNSUBSCRIBED
                };
                match w {
                    Some(w) => {
                        use_window(self, f);
                        event(name, None, Some(w), Vec::new())
                    }
                    None if verb == Verb::Subscribe => Rule::Subscribed,
                    None => Rule::Unsubscribed,
                }
            }
            Verb::Refund | Verb::Cancel | Verb::Fulfil => {
                use_window(self, f);
                use_count(self, f);
                self.use_toks(&f.order_noun.clone());
                let name = match verb {
                    Verb::Refund => "Order Refunded",
                    Verb::Cancel => "Order Cancelled",
                    _ => "Order Fulfilled",
                };
                event(name, c, w, Vec::new())
            }
            Verb::Bounce => {
                self.use_toks(&f.email_noun.clone());
                Rule::Bounced
            }
            Verb::HasEmail => {
                self.use_toks(&f.email_noun.clone());
                Rule::EmailExists
            }
        })
    }

    fn implied_verb(&mut self, f: &Frame) -> Option<Verb> {
        if !f.order_noun.is_empty() || f.moment.is_some() {
            return Some(Verb::Buy);
        }
        if f.item.is_some() || f.quoted.is_some() {
            return Some(Verb::Buy);
        }
        if !f.cart_noun.is_empty() {
            return Some(Verb::Abandon);
        }
        if !f.checkout_noun.is_empty() {
            return Some(Verb::StartCheckout);
        }
        if f.average.is_empty() {
            // an amount of money alone is spending; a plain number alone
            // ("aged over 30") is nothing the grammar can place
            if f.amounts.iter().any(|a| a.per_order) {
                return Some(Verb::Buy);
            }
            if f.amounts.iter().any(|a| a.money) {
                return Some(Verb::Spend);
            }
        }
        if !f.email_noun.is_empty() {
            if f.count.is_some() || f.window.is_some() {
                return Some(Verb::Email(EmailAction::Received));
            }
            // "with an email address", "without email"
            return Some(Verb::HasEmail);
        }
        if f.count.is_some() {
            return Some(Verb::Buy);
        }
        None
    }

    fn buy(&mut self, f: &mut Frame) -> Option<Rule> {
        let order_noun = f.order_noun.clone();
        self.use_toks(&order_noun);
        let w = f.window.as_ref().map(|w| w.0);
        let c = f.count.as_ref().map(|c| c.0);
        let use_window = |r: &mut Reader, f: &Frame| {
            if let Some(w) = &f.window {
                r.use_toks(&w.1)
            }
        };
        let use_count = |r: &mut Reader, f: &Frame| {
            if let Some(c) = &f.count {
                r.use_toks(&c.1)
            }
        };
        if let Some((m, toks)) = f.moment.clone() {
            if let Some(w) = w {
                self.use_toks(&toks);
                use_window(self, f);
                let metric = if m == Moment::Last {
                    Metric::OrdersLastAt
                } else {
                    Metric::OrdersFirstAt
                };
                return Some(Rule::Metric {
                    metric,
                    test: MetricTest::Window { window: w },
                });
            }
            self.use_toks(&toks[..toks.len().saturating_sub(1)]);
        }
        if let Some((item, toks)) = f.item.clone() {
            self.use_toks(&toks);
            use_window(self, f);
            let (item, value) = match item {
                Item::Category(c) => (BoughtItem::Category, c),
                Item::Product(p) => (BoughtItem::Product, p),
            };
            return Some(Rule::Bought {
                item,
                value,
                window: w,
            });
        }
        if let Some((q, toks)) = f.quoted.clone() {
            self.use_toks(&toks);
            use_window(self, f);
            return Some(Rule::Bought {
                item: BoughtItem::Product,
                value: q,
                window: w,
            });
        }
        let per_order: Vec<Amount> = f.amounts.iter().filter(|a| a.per_order).cloned().collect();
        let total: Vec<Amount> = f.amounts.iter().filter(|a| !a.per_order).cloned().collect();
        let mut rules = Vec::new();
        // plain numbers after a buying verb are counts ("bought 3")
        let mut c = c;
        let mut total_money = Vec::new();
        for a in total {
            if !a.money && c.is_none() && a.value.fract().is_zero() {
                if let Ok(times) = u32::try_from(a.value) {
                    c = Some(Count { op: a.op, times });
                    self.use_toks(&a.tokens);
                    continue;
                }
            }
            if a.money {
                total_money.push(a);
            }
        }
        for a in &total_money {
            self.use_toks(&a.tokens);
            rules.push(metric(Metric::OrdersTotalSpent, a.op, a.value));
        }
        if !per_order.is_empty() {
            for a in &per_order {
                self.use_toks(&a.tokens);
            }
            use_window(self, f);
            use_count(self, f);
            let filters = per_order
                .iter()
                .map(|a| PropertyFilter {
                    path: vec!["total".to_owned()],
                    test: ValueTest::Compare {
                        op: a.op,
                        value: Literal::Number(a.value),
                    },
                })
                .collect();
            rules.push(Rule::Performed {
                event: ORDER_COMPLETED.to_owned(),
                count: c,
                window: w,
                filters,
            });
            return and(rules);
        }
        if !rules.is_empty() && c.is_none() && w.is_none() {
            return and(rules);
        }
        use_count(self, f);
        use_window(self, f);
        rules.push(match (c, w) {
            (Some(c), None) => metric(Metric::OrdersCount, c.op, Decimal::from(c.times)),
            (None, None) => metric(Metric::OrdersCount, CmpOp::Ge, Decimal::ONE),
            (c, Some(w)) => Rule::Performed {
                event: ORDER_COMPLETED.to_owned(),
                count: c,
                window: Some(w),
                filters: Vec::new(),
            },
        });
        and(rules)
    }
}

fn suffix_of(r: &Reader, j: &mut usize, op: &mut Option<CmpOp>) {
    if r.symbol(*j) == Some('+') {
        *op = Some(CmpOp::Ge);
        *j += 1;
        return;
    }
    for s in SUFFIX_GE {
        if r.words_at(*j, s) && op.is_none() {
            *op = Some(CmpOp::Ge);
            *j += s.len() - usize::from(s.len() == 3);
            return;
        }
    }
    for s in SUFFIX_LE {
        if r.words_at(*j, s) && op.is_none() {
            *op = Some(CmpOp::Le);
            *j += s.len();
            return;
        }
    }
}

/// "between 2 and 5 times": the rule with its count's upper bound added.
fn with_upper(rule: Rule, upper: Count) -> Rule {
    let bounded = match &rule {
        Rule::Metric {
            metric: Metric::OrdersCount,
            ..
        } => Some(metric(
            Metric::OrdersCount,
            upper.op,
            Decimal::from(upper.times),
        )),
        Rule::Performed {
            event,
            count: Some(_),
            window,
            filters,
        } => Some(Rule::Performed {
            event: event.clone(),
            count: Some(upper),
            window: *window,
            filters: filters.clone(),
        }),
        Rule::Email {
            action,
            campaign,
            count: Some(_),
            window,
        } => Some(Rule::Email {
            action: *action,
            campaign: campaign.clone(),
            count: Some(upper),
            window: *window,
        }),
        _ => None,
    };
    match bounded {
        Some(b) => Rule::And {
            rules: vec![rule, b],
        },
        None => rule,
    }
}

fn set_verb(f: &mut Frame, v: Verb, toks: Toks) {
    match &f.verb {
        Some((old, _)) if *old == v || !v.overrides(*old) && old.overrides(v) => {
            // "opened … opens": one verb
        }
        _ => f.verb = Some((v, toks)),
    }
}

fn moment(f: &mut Frame, m: Moment, toks: Toks) {
    f.moment = Some((m, toks.clone()));
    f.order_noun.extend(toks.last().copied());
}

fn first_timer(f: &mut Frame, toks: Toks) {
    f.count = Some((
        Count {
            op: CmpOp::Eq,
            times: 1,
        },
        toks.clone(),
    ));
    f.order_noun.extend(toks.last().copied());
}

fn repeat(f: &mut Frame, toks: Toks) {
    f.count = Some((
        Count {
            op: CmpOp::Ge,
            times: 2,
        },
        toks,
    ));
}

fn metric(metric: Metric, op: CmpOp, value: Decimal) -> Rule {
    Rule::Metric {
        metric,
        test: MetricTest::Compare {
            op,
            value: Num(normalize_decimal(value)),
        },
    }
}

fn trait_eq(field: &str, value: &str) -> Rule {
    Rule::Trait {
        path: vec![field.to_owned()],
        test: ValueTest::Compare {
            op: CmpOp::Eq,
            value: Literal::String(value.to_owned()),
        },
    }
}

fn filter_eq(field: &str, value: &str) -> PropertyFilter {
    PropertyFilter {
        path: vec![field.to_owned()],
        test: ValueTest::Compare {
            op: CmpOp::Eq,
            value: Literal::String(value.to_owned()),
        },
    }
}

/// Event properties name a product by `sku` when the catalogue has SKUs,
/// else by `product_id`.
fn product_key_field(v: &Vocabulary, value: &str) -> &'static str {
    if v.products.iter().any(|p| p.sku.as_deref() == Some(value)) {
        "sku"
    } else {
        "product_id"
    }
}

/// "never bought" is "no orders" (`orders.count = 0`), other negations wrap.
fn negate_core(core: Rule) -> Rule {
    match core {
        Rule::Metric {
            metric: Metric::OrdersCount,
            test:
                MetricTest::Compare {
                    op: CmpOp::Ge,
                    value,
                },
        } if value.0 == Decimal::ONE => metric(Metric::OrdersCount, CmpOp::Eq, Decimal::ZERO),
        other => not(other),
    }
}
