//! The text form's parser: a tokenizer that keeps each token's line and
//! column, and a recursive-descent parser over the grammar in
//! `docs/SEGMENTS.md`. Hand-written rather than a combinator crate so that
//! each error names exactly what the grammar expected at that point and
//! after which token (`line 2, col 14: expected a number after ">="`).

use rust_decimal::Decimal;

use super::ast::*;

/// Where a rule stops parsing, and what the parser expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// What the grammar allowed at that point (`a number`).
    pub expected: String,
    /// What was there instead (`"abc"`, or `the end of the rule`).
    pub found: String,
    /// `line 2, col 14: expected a number after ">="`
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Word(String),
    Str(String),
    Number(Decimal),
    Op(CmpOp),
    Open,
    Close,
    OpenList,
    CloseList,
    Comma,
    Dot,
    End,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    text: String,
    line: usize,
    column: usize,
}

fn error_at(token: &Token, previous: Option<&Token>, expected: &str) -> ParseError {
    let found = if token.kind == Kind::End {
        "the end of the rule".to_owned()
    } else {
        format!("\"{}\"", token.text)
    };
    let after = previous
        .map(|p| format!(" after \"{}\"", p.text))
        .unwrap_or_default();
    ParseError {
        line: token.line,
        column: token.column,
        expected: expected.to_owned(),
        message: format!(
            "line {}, col {}: expected {expected}{after}",
            token.line, token.column
        ),
        found,
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens: Vec<Token> = Vec::new();
    let (mut i, mut line, mut column) = (0usize, 1usize, 1usize);
    let lex_error = |line: usize, column: usize, expected: &str, found: String| ParseError {
        line,
        column,
        expected: expected.to_owned(),
        message: format!("line {line}, col {column}: expected {expected}"),
        found,
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            i += 1;
            line += 1;
            column = 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            column += 1;
            continue;
        }
        let start = i;
        let (start_line, start_column) = (line, column);
        let kind = if c.is_ascii_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            Kind::Word(chars[start..i].iter().collect())
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let text: String = chars[start..i].iter().collect();
            let value = text.parse::<Decimal>().map_err(|_| {
                lex_error(line, column, "a number that fits 28 digits", text.clone())
            })?;
            Kind::Number(normalize_decimal(value))
        } else if c == '"' {
            i += 1;
            let mut escaped = false;
            loop {
                match chars.get(i) {
                    None | Some('\n') => {
                        return Err(lex_error(
                            line,
                            column + (i - start),
                            "a closing \" of the string",
                            "the end of the line".into(),
                        ))
                    }
                    Some('\\') if !escaped => escaped = true,
                    Some('"') if !escaped => break,
                    Some(_) => escaped = false,
                }
                i += 1;
            }
            i += 1;
            let raw: String = chars[start..i].iter().collect();
            let value: String = serde_json::from_str(&raw).map_err(|_| {
                lex_error(
                    start_line,
                    start_column,
                    "a string with valid escapes (\\\" \\\\ \\n \\t \\uXXXX)",
                    raw.clone(),
                )
            })?;
            Kind::Str(value)
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let (kind, len) = match (two.as_str(), c) {
                ("!=", _) => (Kind::Op(CmpOp::Ne), 2),
                ("<=", _) => (Kind::Op(CmpOp::Le), 2),
                (">=", _) => (Kind::Op(CmpOp::Ge), 2),
                (_, '=') => (Kind::Op(CmpOp::Eq), 1),
                (_, '<') => (Kind::Op(CmpOp::Lt), 1),
                (_, '>') => (Kind::Op(CmpOp::Gt), 1),
                (_, '(') => (Kind::Open, 1),
                (_, ')') => (Kind::Close, 1),
                (_, '[') => (Kind::OpenList, 1),
                (_, ']') => (Kind::CloseList, 1),
                (_, ',') => (Kind::Comma, 1),
                (_, '.') => (Kind::Dot, 1),
                _ => {
                    return Err(lex_error(
                        line,
                        column,
                        "a word, a \"string\", a number or one of = != < <= > >= ( ) [ ] , .",
                        format!("\"{c}\""),
                    ))
                }
            };
            i += len;
            kind
        };
        column += i - start;
        tokens.push(Token {
            kind,
            text: chars[start..i].iter().collect(),
            line: start_line,
            column: start_column,
        });
    }
    tokens.push(Token {
        kind: Kind::End,
        text: String::new(),
        line,
        column,
    });
    Ok(tokens)
}

/// Parses a rule's text form.
pub fn parse(text: &str) -> Result<Rule, ParseError> {
    let mut p = Parser {
        tokens: tokenize(text)?,
        pos: 0,
    };
    let rule = p.or()?;
    if p.peek().kind != Kind::End {
        return Err(p.error("`and`, `or` or the end of the rule"));
    }
    Ok(rule)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

const PREDICATES: &str = "a condition (trait., email exists, subscribed, unsubscribed, bounced, tag, orders., \
last_seen, performed, last performed, received/opened/clicked email, bought, in segment, rfm., not or \"(\")";

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        &self.tokens[(self.pos + ahead).min(self.tokens.len() - 1)]
    }

    fn previous(&self) -> Option<&Token> {
        self.pos.checked_sub(1).map(|i| &self.tokens[i])
    }

    fn error(&self, expected: &str) -> ParseError {
        error_at(self.peek(), self.previous(), expected)
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(&self.peek().kind, Kind::Word(w) if w == word)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if self.is_word(word) {
            self.next();
            true
        } else {
            false
        }
    }

    fn expect_word(&mut self, word: &str) -> Result<(), ParseError> {
        if self.eat_word(word) {
            Ok(())
        } else {
            Err(self.error(&format!("`{word}`")))
        }
    }

    fn expect(&mut self, kind: &Kind, what: &str) -> Result<(), ParseError> {
        if self.peek().kind == *kind {
            self.next();
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn string(&mut self, what: &str) -> Result<String, ParseError> {
        match &self.peek().kind {
            Kind::Str(s) => {
                let s = s.clone();
                self.next();
                Ok(s)
            }
            _ => Err(self.error(what)),
        }
    }

    fn op(&mut self) -> Option<CmpOp> {
        match self.peek().kind {
            Kind::Op(op) => {
                self.next();
                Some(op)
            }
            _ => None,
        }
    }

    fn whole_number(&mut self, what: &str) -> Result<u32, ParseError> {
        match &self.peek().kind {
            Kind::Number(d) if d.fract().is_zero() && !d.is_sign_negative() => {
                let n = u32::try_from(d.mantissa()).ok().filter(|_| d.scale() == 0);
                match n {
                    Some(n) => {
                        self.next();
                        Ok(n)
                    }
                    None => Err(self.error(what)),
                }
            }
            _ => Err(self.error(what)),
        }
    }

    fn or(&mut self) -> Result<Rule, ParseError> {
        let mut rules = vec![self.and()?];
        while self.eat_word("or") {
            rules.push(self.and()?);
        }
        Ok(if rules.len() == 1 {
            rules.remove(0)
        } else {
            Rule::Or { rules }
        })
    }

    fn and(&mut self) -> Result<Rule, ParseError> {
        let mut rules = vec![self.unary()?];
        while self.eat_word("and") {
            rules.push(self.unary()?);
        }
        Ok(if rules.len() == 1 {
            rules.remove(0)
        } else {
            Rule::And { rules }
        })
    }

    fn unary(&mut self) -> Result<Rule, ParseError> {
        if self.eat_word("not") {
            return Ok(Rule::Not {
                rule: Box::new(self.unary()?),
            });
        }
        if self.peek().kind == Kind::Open {
            self.next();
            let rule = self.or()?;
            self.expect(&Kind::Close, "\")\", `and` or `or`")?;
            return Ok(rule);
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Rule, ParseError> {
        let Kind::Word(word) = self.peek().kind.clone() else {
            return Err(self.error(PREDICATES));
        };
        match word.as_str() {
            "trait" => {
                self.next();
                self.expect(&Kind::Dot, "\".\" and a trait name")?;
                let path = self.path("a trait name")?;
                let test = self.value_test()?;
                Ok(Rule::Trait { path, test })
            }
            "email" => {
                self.next();
                self.expect_word("exists")?;
                Ok(Rule::EmailExists)
            }
            "subscribed" => {
                self.next();
                Ok(Rule::Subscribed)
            }
            "unsubscribed" => {
                self.next();
                Ok(Rule::Unsubscribed)
            }
            "bounced" => {
                self.next();
                Ok(Rule::Bounced)
            }
            "tag" => {
                self.next();
                let tag = self.string("a tag in quotes")?;
                Ok(Rule::Tag { tag })
            }
            "orders" => {
                self.next();
                self.expect(
                    &Kind::Dot,
                    "\".\" and count, total_spent, average_value, first_at or last_at",
                )?;
                let metric = match &self.peek().kind {
                    Kind::Word(w) => match w.as_str() {
                        "count" => Metric::OrdersCount,
                        "total_spent" => Metric::OrdersTotalSpent,
                        "average_value" => Metric::OrdersAverageValue,
                        "first_at" => Metric::OrdersFirstAt,
                        "last_at" => Metric::OrdersLastAt,
                        _ => {
                            return Err(self
                                .error("count, total_spent, average_value, first_at or last_at"))
                        }
                    },
                    _ => {
                        return Err(
                            self.error("count, total_spent, average_value, first_at or last_at")
                        )
                    }
                };
                self.next();
                self.metric(metric)
            }
            "last_seen" => {
                self.next();
                self.metric(Metric::LastSeen)
            }
            "performed" => {
                self.next();
                let event = self.string("an event name in quotes")?;
                let count = self.count()?;
                let window = self.window()?;
                let filters = self.filters()?;
                Ok(Rule::Performed {
                    event,
                    count,
                    window,
                    filters,
                })
            }
            "last" => {
                self.next();
                self.expect_word("performed")?;
                let event = self.string("an event name in quotes")?;
                let window = self
                    .window()?
                    .ok_or_else(|| self.error("`within` or `before`"))?;
                let filters = self.filters()?;
                Ok(Rule::LastPerformed {
                    event,
                    window,
                    filters,
                })
            }
            "received" | "opened" | "clicked" => {
                let action = match word.as_str() {
                    "received" => EmailAction::Received,
                    "opened" => EmailAction::Opened,
                    _ => EmailAction::Clicked,
                };
                self.next();
                self.expect_word("email")?;
                let campaign = match &self.peek().kind {
                    Kind::Str(s) => {
                        let s = s.clone();
                        self.next();
                        Some(s)
                    }
                    _ => None,
                };
                let count = self.count()?;
                let window = self.window()?;
                Ok(Rule::Email {
                    action,
                    campaign,
                    count,
                    window,
                })
            }
            "bought" => {
                self.next();
                let item = if self.eat_word("product") {
                    BoughtItem::Product
                } else if self.eat_word("category") {
                    BoughtItem::Category
                } else {
                    return Err(self.error("`product` or `category`"));
                };
                let value = self.string(match item {
                    BoughtItem::Product => "a product id or SKU in quotes",
                    BoughtItem::Category => "a category in quotes",
                })?;
                let window = self.window()?;
                Ok(Rule::Bought {
                    item,
                    value,
                    window,
                })
            }
            "in" => {
                self.next();
                self.expect_word("segment")?;
                let segment = self.string("a segment name in quotes")?;
                Ok(Rule::InSegment { segment })
            }
            "rfm" => {
                self.next();
                self.expect(
                    &Kind::Dot,
                    "\".\" and group, recency, frequency or monetary",
                )?;
                let field = match &self.peek().kind {
                    Kind::Word(w) => match w.as_str() {
                        "group" => RfmField::Group,
                        "recency" => RfmField::Recency,
                        "frequency" => RfmField::Frequency,
                        "monetary" => RfmField::Monetary,
                        _ => return Err(self.error("group, recency, frequency or monetary")),
                    },
                    _ => return Err(self.error("group, recency, frequency or monetary")),
                };
                self.next();
                if field == RfmField::Group {
                    let op = match self.op() {
                        Some(op @ (CmpOp::Eq | CmpOp::Ne)) => op,
                        _ => return Err(self.error("= or !=")),
                    };
                    let value = Literal::String(self.string("a group name in quotes")?);
                    Ok(Rule::Rfm { field, op, value })
                } else {
                    let op = self
                        .op()
                        .ok_or_else(|| self.error("one of = != < <= > >="))?;
                    let value = match self.peek().kind {
                        Kind::Number(d) => {
                            self.next();
                            Literal::Number(d)
                        }
                        _ => return Err(self.error("a number")),
                    };
                    Ok(Rule::Rfm { field, op, value })
                }
            }
            _ => Err(self.error(PREDICATES)),
        }
    }

    fn metric(&mut self, metric: Metric) -> Result<Rule, ParseError> {
        let test = if metric.is_time() {
            let window = self
                .window()?
                .ok_or_else(|| self.error("`within` or `before`"))?;
            MetricTest::Window { window }
        } else {
            let op = self
                .op()
                .ok_or_else(|| self.error("one of = != < <= > >="))?;
            let value = match self.peek().kind {
                Kind::Number(d) => {
                    self.next();
                    Num(d)
                }
                _ => return Err(self.error("a number")),
            };
            MetricTest::Compare { op, value }
        };
        Ok(Rule::Metric { metric, test })
    }

    /// `a.b."c d"`: words or quoted names separated by dots.
    fn path(&mut self, what: &str) -> Result<Vec<String>, ParseError> {
        let mut path = Vec::new();
        loop {
            match &self.peek().kind {
                Kind::Word(w) | Kind::Str(w) => {
                    path.push(w.clone());
                    self.next();
                }
                _ => return Err(self.error(what)),
            }
            if self.peek().kind == Kind::Dot {
                self.next();
            } else {
                return Ok(path);
            }
        }
    }

    fn literal(&mut self) -> Result<Literal, ParseError> {
        let value = match &self.peek().kind {
            Kind::Str(s) => Literal::String(s.clone()),
            Kind::Number(d) => Literal::Number(*d),
            Kind::Word(w) if w == "true" => Literal::Bool(true),
            Kind::Word(w) if w == "false" => Literal::Bool(false),
            _ => return Err(self.error("a \"string\", a number, true or false")),
        };
        self.next();
        Ok(value)
    }

    fn value_test(&mut self) -> Result<ValueTest, ParseError> {
        if let Some(op) = self.op() {
            let value = self.literal()?;
            if matches!(value, Literal::Bool(_)) && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                self.pos -= 1;
                return Err(self.error("a \"string\" or a number (true and false take = or !=)"));
            }
            return Ok(ValueTest::Compare { op, value });
        }
        if self.eat_word("in") {
            self.expect(&Kind::OpenList, "\"[\"")?;
            let mut values = Vec::new();
            if self.peek().kind != Kind::CloseList {
                loop {
                    values.push(self.literal()?);
                    if self.peek().kind == Kind::Comma {
                        self.next();
                    } else {
                        break;
                    }
                }
            }
            self.expect(&Kind::CloseList, "\",\" or \"]\"")?;
            return Ok(ValueTest::In { values });
        }
        if self.eat_word("contains") {
            let text = self.string("a \"string\"")?;
            return Ok(ValueTest::Contains { text });
        }
        if self.eat_word("exists") {
            return Ok(ValueTest::Exists);
        }
        Err(self.error("one of = != < <= > >=, `in`, `contains` or `exists`"))
    }

    fn count(&mut self) -> Result<Option<Count>, ParseError> {
        let Some(op) = self.op() else {
            return Ok(None);
        };
        let times = self.whole_number("a whole number")?;
        if !(self.eat_word("times") || self.eat_word("time")) {
            return Err(self.error("`times`"));
        }
        Ok(Some(Count { op, times }))
    }

    fn window(&mut self) -> Result<Option<Window>, ParseError> {
        let relation = if self.eat_word("within") {
            Relation::Within
        } else if self.eat_word("before") {
            Relation::Before
        } else {
            return Ok(None);
        };
        let amount = self.whole_number("a whole number")?;
        let unit = match &self.peek().kind {
            Kind::Word(w) => TimeUnit::from_word(w),
            _ => None,
        }
        .ok_or_else(|| self.error("hours, days, weeks, months or years"))?;
        self.next();
        if relation == Relation::Before {
            self.expect_word("ago")?;
        }
        Ok(Some(Window {
            relation,
            amount,
            unit,
        }))
    }

    /// `where properties.x … and properties.y …`; an `and` followed by
    /// anything but `properties` belongs to the enclosing rule.
    fn filters(&mut self) -> Result<Vec<PropertyFilter>, ParseError> {
        let mut filters = Vec::new();
        if !self.eat_word("where") {
            return Ok(filters);
        }
        loop {
            self.expect_word("properties")?;
            self.expect(&Kind::Dot, "\".\" and a property name")?;
            let path = self.path("a property name")?;
            let test = self.value_test()?;
            filters.push(PropertyFilter { path, test });
            let continues = self.is_word("and")
                && matches!(&self.peek_at(1).kind, Kind::Word(w) if w == "properties");
            if !continues {
                return Ok(filters);
            }
            self.next();
        }
    }
}
