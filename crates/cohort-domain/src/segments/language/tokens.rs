//! Merchants' text as tokens with byte spans: words (lower case, without
//! apostrophes and hyphens, British spellings and small typos repaired),
//! numbers, money symbols, quoted names and punctuation.

use std::collections::BTreeSet;

use rust_decimal::Decimal;

use super::lexicon;

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Word,
    Number(Decimal),
    /// Text in quotes, as written.
    Quoted(String),
    /// A money symbol, as the ISO code it stands for.
    Currency(&'static str),
    Symbol(char),
}

#[derive(Debug, Clone)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
    /// The text as written.
    pub raw: String,
    /// For words: the normalised word; otherwise empty.
    pub word: String,
}

/// Words whose hyphen is spelling, not a join of two words.
const JOINED: &[&str] = &[
    "email",
    "emails",
    "checkout",
    "checkouts",
    "signup",
    "optin",
    "optout",
    "ecommerce",
];

/// Splits `text`; `known` are the words typos are repaired towards (the
/// grammar's lexicon and the store's own names); with `repair` false
/// (reading the store's names themselves) no word is changed.
pub fn tokenize(text: &str, known: &BTreeSet<String>, repair: bool) -> Vec<Token> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |k: usize| chars.get(k).map_or(text.len(), |c| c.0);
    let mut k = 0;
    while let Some(&(start, c)) = chars.get(k) {
        if c.is_whitespace() {
            k += 1;
            continue;
        }
        if let Some(close) = closing_quote(c) {
            if let Some(offset) = chars[k + 1..]
                .iter()
                .position(|&(_, d)| d == close || (close == '"' && d == '”'))
            {
                let last = k + 1 + offset;
                let inner = &text[end_of(k + 1)..chars[last].0];
                out.push(Token {
                    kind: Kind::Quoted(inner.trim().to_owned()),
                    start,
                    end: end_of(last + 1),
                    raw: text[start..end_of(last + 1)].to_owned(),
                    word: String::new(),
                });
                k = last + 1;
                continue;
            }
        }
        if let Some(code) = currency_symbol(c) {
            out.push(symbolic(text, start, end_of(k + 1), Kind::Currency(code)));
            k += 1;
            continue;
        }
        if c.is_ascii_digit() {
            let mut j = k;
            let mut digits = String::new();
            let mut seen_point = false;
            while let Some(&(_, d)) = chars.get(j) {
                let next_digit = chars.get(j + 1).is_some_and(|n| n.1.is_ascii_digit());
                if d.is_ascii_digit() {
                    digits.push(d);
                } else if d == ',' && next_digit && thousands_group(&chars, j) {
                    // a thousands separator
                } else if d == '.' && next_digit && !seen_point {
                    seen_point = true;
                    digits.push('.');
                } else {
                    break;
                }
                j += 1;
            }
            let mut value = digits.parse::<Decimal>().ok();
            // `1.5k`, `2k`
            if chars.get(j).is_some_and(|c| c.1 == 'k' || c.1 == 'K')
                && !chars.get(j + 1).is_some_and(|c| c.1.is_alphanumeric())
            {
                value = value.and_then(|v| v.checked_mul(Decimal::from(1000)));
                j += 1;
            }
            let kind = match value {
                Some(v) => Kind::Number(v.normalize()),
                None => Kind::Symbol('#'),
            };
            out.push(symbolic(text, start, end_of(j), kind));
            k = j;
            continue;
        }
        if c.is_alphanumeric() || c == '_' {
            let mut j = k;
            while let Some(&(_, d)) = chars.get(j) {
                let inner = (d == '\'' || d == '’' || d == '-' || d == '.')
                    && chars.get(j + 1).is_some_and(|n| n.1.is_alphanumeric())
                    && j > k
                    && (d != '.' || chars.get(j + 1).is_some_and(|n| n.1.is_ascii_digit()));
                if d.is_alphanumeric() || d == '_' || inner {
                    j += 1;
                } else {
                    break;
                }
            }
            push_word(&mut out, text, start, end_of(j), known, repair);
            k = j;
            continue;
        }
        out.push(symbolic(text, start, end_of(k + 1), Kind::Symbol(c)));
        k += 1;
    }
    out
}

fn thousands_group(chars: &[(usize, char)], comma: usize) -> bool {
    (1..=3).all(|d| chars.get(comma + d).is_some_and(|c| c.1.is_ascii_digit()))
        && !chars.get(comma + 4).is_some_and(|c| c.1.is_ascii_digit())
}

fn closing_quote(c: char) -> Option<char> {
    match c {
        '"' => Some('"'),
        '“' => Some('”'),
        '«' => Some('»'),
        '„' => Some('“'),
        _ => None,
    }
}

pub fn currency_symbol(c: char) -> Option<&'static str> {
    match c {
        '$' => Some("USD"),
        '€' => Some("EUR"),
        '£' => Some("GBP"),
        '¥' => Some("JPY"),
        '₹' => Some("INR"),
        _ => None,
    }
}

fn symbolic(text: &str, start: usize, end: usize, kind: Kind) -> Token {
    Token {
        kind,
        start,
        end,
        raw: text[start..end].to_owned(),
        word: String::new(),
    }
}

fn normalise(raw: &str) -> String {
    raw.chars()
        .filter(|c| *c != '\'' && *c != '’')
        .flat_map(char::to_lowercase)
        .collect()
}

fn push_word(
    out: &mut Vec<Token>,
    text: &str,
    start: usize,
    end: usize,
    known: &BTreeSet<String>,
    repair: bool,
) {
    let raw = &text[start..end];
    let joined: String = normalise(raw).chars().filter(|c| *c != '-').collect();
    let has_hyphen = raw.contains('-');
    let whole_known = known.contains(&raw.to_lowercase());
    if has_hyphen && !JOINED.contains(&joined.as_str()) && !looks_like_code(raw) && !whole_known {
        // `first-time`, `non-vip`, `t-shirts`: each part is a word
        let mut part_start = start;
        for part in raw.split('-') {
            let part_end = part_start + part.len();
            if !part.is_empty() {
                push_word(out, text, part_start, part_end, known, repair);
            }
            part_start = part_end + 1;
        }
        return;
    }
    let mut word = joined;
    if let Some(us) = lexicon::american(&word) {
        word = us.to_owned();
    }
    if repair && !known.contains(&word) && word.chars().count() >= 5 {
        if let Some(fixed) = repaired(&word, known) {
            word = fixed;
        }
    }
    out.push(Token {
        kind: Kind::Word,
        start,
        end,
        raw: raw.to_owned(),
        word,
    });
}

/// `SKU-123`, `MUG-01`: letters and digits joined by hyphens.
fn looks_like_code(raw: &str) -> bool {
    raw.chars().any(|c| c.is_ascii_digit()) && raw.chars().any(|c| c.is_alphabetic())
}

/// The known word one edit (insertion, deletion, substitution or swap of
/// neighbours) away, if there is exactly one at the smallest such length
/// difference; words of five letters or more only.
fn repaired(word: &str, known: &BTreeSet<String>) -> Option<String> {
    let w: Vec<char> = word.chars().collect();
    let mut found: Option<&String> = None;
    for candidate in known {
        let c: Vec<char> = candidate.chars().collect();
        if c.len() < 5 || c.len().abs_diff(w.len()) > 1 {
            continue;
        }
        if one_edit(&w, &c) {
            // prefer a candidate that keeps the first letter, then the length
            let rank = |x: &[char]| (x.first() == w.first(), x.len() == w.len());
            match found {
                Some(prev) if rank(&prev.chars().collect::<Vec<_>>()) >= rank(&c) => {}
                _ => found = Some(candidate),
            }
        }
    }
    found.cloned()
}

fn one_edit(a: &[char], b: &[char]) -> bool {
    if a == b {
        return false;
    }
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (&a[prefix..], &b[prefix..]);
    match (ra.len(), rb.len()) {
        (x, y) if x == y => {
            ra[1..] == rb[1..] || (x >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..])
        }
        (x, y) if x == y + 1 => ra[1..] == *rb,
        (x, y) if x + 1 == y => *ra == rb[1..],
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_edit_is_insert_delete_substitute_or_swap() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        assert!(one_edit(&c("purchsed"), &c("purchased")));
        assert!(one_edit(&c("recieved"), &c("received")));
        assert!(one_edit(&c("boughtt"), &c("bought")));
        assert!(one_edit(&c("opemed"), &c("opened")));
        assert!(!one_edit(&c("opened"), &c("opened")));
        assert!(!one_edit(&c("abcdef"), &c("badcfe")));
    }

    #[test]
    fn words_numbers_money_and_quotes_carry_their_spans() {
        let known: BTreeSet<String> = ["purchased".to_owned()].into_iter().collect();
        let text = "Purchsed \"Blue Mug\" for €1,250.50 haven’t t-shirts 2k";
        let t = tokenize(text, &known, true);
        assert_eq!(t[0].word, "purchased");
        assert_eq!(&text[t[0].start..t[0].end], "Purchsed");
        assert_eq!(t[1].kind, Kind::Quoted("Blue Mug".into()));
        assert_eq!(t[3].kind, Kind::Currency("EUR"));
        assert_eq!(t[4].kind, Kind::Number(Decimal::new(125050, 2)));
        assert_eq!(t[5].word, "havent");
        assert_eq!((t[6].word.as_str(), t[7].word.as_str()), ("t", "shirts"));
        assert_eq!(t[8].kind, Kind::Number(Decimal::from(2000)));
    }
}
