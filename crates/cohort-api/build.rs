//! Builds the served JS SDK from `sdk/js/cohort.js`: the version is filled
//! in, then comments and indentation are stripped by `strip` below, and the
//! result is written to `$OUT_DIR/cohort.js` for `src/sdk.rs` to embed.
//!
//! Why a stripper here and not a minifier from npm: the binary must build on
//! a fresh machine with `cargo build` alone (no Node, no network), and a
//! conservative stripper gets most of what matters once the file is gzipped
//! (comments and indentation; see docs/SDK.md for the measured sizes). It
//! renames nothing and never removes a line break the grammar could depend
//! on (automatic semicolon insertion), so what runs is the source as written.
//!
//! It understands strings, template literals, regular expression literals
//! and comments. A `/` is read as the start of a regular expression where an
//! expression starts (after `( , = : [ ! & | ? { } ; + - * % < > ~ ^` or a
//! keyword such as `return`), as a division elsewhere; the SDK's source is
//! written to fit that rule, and `tests/sdk_asset.rs` checks the output
//! with `node --check` and exercises it in Chromium.

use std::path::PathBuf;

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let source_path = manifest.join("../../sdk/js/cohort.js");
    println!("cargo:rerun-if-changed={}", source_path.display());
    let source = std::fs::read_to_string(&source_path).unwrap_or_else(|e| {
        panic!(
            "cannot read the JS SDK source {}: {e}",
            source_path.display()
        )
    });
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_else(|_| "0.0.0".into());
    let stripped = strip(&source.replace("__COHORT_VERSION__", &version))
        .unwrap_or_else(|e| panic!("sdk/js/cohort.js: {e}"));
    let out =
        PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into())).join("cohort.js");
    std::fs::write(&out, stripped)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}

/// Removes comments (keeping a leading `/*! … */` notice), indentation,
/// blank lines, spaces that separate nothing, and line breaks after
/// `{ ; , ( [` or before `} ) ]`. Errors name the line of an unterminated
/// string, template, regular expression or comment, or of an HTML-like
/// comment (`<!--`, `-->`), which scripts treat specially.
pub fn strip(src: &str) -> Result<String, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    // Whitespace seen since the last emitted token: 0 none, 1 space, 2 line break.
    let mut gap = 0u8;
    // Brace depth inside each open template substitution (`${ … }`).
    let mut templates: Vec<usize> = Vec::new();
    let line_of = |at: usize| {
        chars[..at.min(chars.len())]
            .iter()
            .filter(|&&c| c == '\n')
            .count()
            + 1
    };

    if src.starts_with("/*!") {
        let end = src
            .find("*/")
            .ok_or("unterminated notice comment on line 1")?;
        out.push_str(&src[..end + 2]);
        out.push('\n');
        i = src[..end + 2].chars().count();
    }

    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            ' ' | '\t' | '\r' | '\u{feff}' => {
                gap = gap.max(1);
                i += 1;
            }
            '\n' => {
                gap = 2;
                i += 1;
            }
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let start = i;
                i += 2;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(format!("unterminated comment on line {}", line_of(start)))
                        }
                        Some('*') if chars.get(i + 1) == Some(&'/') => break,
                        Some('\n') => gap = 2,
                        _ => {}
                    }
                    i += 1;
                }
                i += 2;
                gap = gap.max(1);
            }
            _ => {
                if (c == '<' && chars[i..].starts_with(&['<', '!', '-', '-']))
                    || (c == '-' && chars[i..].starts_with(&['-', '-', '>']))
                {
                    return Err(format!("HTML-like comment on line {}", line_of(i)));
                }
                separate(&mut out, gap, c);
                gap = 0;
                let start = i;
                match c {
                    '\'' | '"' => {
                        i = copy_string(&chars, i, &mut out).ok_or_else(|| {
                            format!("unterminated string on line {}", line_of(start))
                        })?;
                    }
                    '`' => {
                        out.push('`');
                        i = copy_template(&chars, i + 1, &mut out, &mut templates).ok_or_else(
                            || format!("unterminated template on line {}", line_of(start)),
                        )?;
                    }
                    '/' if regex_allowed(&out) => {
                        i = copy_regex(&chars, i, &mut out).ok_or_else(|| {
                            format!("unterminated regular expression on line {}", line_of(start))
                        })?;
                    }
                    '{' => {
                        if let Some(depth) = templates.last_mut() {
                            *depth += 1;
                        }
                        out.push(c);
                        i += 1;
                    }
                    '}' if templates.last() == Some(&0) => {
                        templates.pop();
                        out.push('}');
                        i = copy_template(&chars, i + 1, &mut out, &mut templates).ok_or_else(
                            || format!("unterminated template on line {}", line_of(start)),
                        )?;
                    }
                    '}' => {
                        if let Some(depth) = templates.last_mut() {
                            *depth -= 1;
                        }
                        out.push(c);
                        i += 1;
                    }
                    _ => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
        }
    }
    if !templates.is_empty() {
        return Err("unterminated template substitution at the end".into());
    }
    out.push('\n');
    Ok(out)
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '\\' || !c.is_ascii()
}

/// Emits what the whitespace before `next` must become: nothing, one space
/// or one line break.
fn separate(out: &mut String, gap: u8, next: char) {
    let Some(prev) = out.chars().next_back() else {
        return;
    };
    if gap == 0 || prev == '\n' {
        return;
    }
    if gap == 2 && !matches!(prev, '{' | ';' | ',' | '(' | '[') && !matches!(next, '}' | ')' | ']')
    {
        out.push('\n');
        return;
    }
    let keep = (is_word(prev) && is_word(next))
        || (matches!(prev, '+' | '-') && matches!(next, '+' | '-'))
        || (prev == '/' && matches!(next, '/' | '*'))
        || (matches!(prev, '/' | '*') && next == '/')
        || (prev == '.' && next.is_ascii_digit())
        || (prev.is_ascii_digit() && next == '.')
        || (prev == '<' && next == '!')
        || (prev == '-' && next == '>');
    if keep {
        out.push(' ');
    }
}

/// Whether a `/` after what is already emitted starts a regular expression.
fn regex_allowed(out: &str) -> bool {
    let trimmed = out.trim_end();
    let Some(prev) = trimmed.chars().next_back() else {
        return true;
    };
    if "(,=:[!&|?{};+-*%<>~^".contains(prev) {
        return true;
    }
    let word: String = trimmed
        .chars()
        .rev()
        .take_while(|&c| is_word(c))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    matches!(
        word.as_str(),
        "return"
            | "typeof"
            | "instanceof"
            | "in"
            | "of"
            | "new"
            | "delete"
            | "void"
            | "throw"
            | "case"
            | "do"
            | "else"
            | "yield"
            | "await"
    )
}

fn copy_string(chars: &[char], start: usize, out: &mut String) -> Option<usize> {
    let quote = chars[start];
    out.push(quote);
    let mut i = start + 1;
    loop {
        let c = *chars.get(i)?;
        out.push(c);
        i += 1;
        match c {
            '\\' => {
                out.push(*chars.get(i)?);
                i += 1;
            }
            '\n' => return None,
            c if c == quote => return Some(i),
            _ => {}
        }
    }
}

/// Copies template text from `i` (just after a backtick or a substitution's
/// closing brace) up to and including the closing backtick, or up to `${`,
/// in which case a substitution is opened.
fn copy_template(
    chars: &[char],
    mut i: usize,
    out: &mut String,
    templates: &mut Vec<usize>,
) -> Option<usize> {
    loop {
        let c = *chars.get(i)?;
        out.push(c);
        i += 1;
        match c {
            '\\' => {
                out.push(*chars.get(i)?);
                i += 1;
            }
            '`' => return Some(i),
            '$' if chars.get(i) == Some(&'{') => {
                out.push('{');
                templates.push(0);
                return Some(i + 1);
            }
            _ => {}
        }
    }
}

fn copy_regex(chars: &[char], start: usize, out: &mut String) -> Option<usize> {
    out.push('/');
    let mut i = start + 1;
    let mut in_class = false;
    loop {
        let c = *chars.get(i)?;
        out.push(c);
        i += 1;
        match c {
            '\\' => {
                out.push(*chars.get(i)?);
                i += 1;
            }
            '\n' => return None,
            '[' => in_class = true,
            ']' => in_class = false,
            '/' if !in_class => return Some(i),
            _ => {}
        }
    }
}
