//! The bodies of `message/delivery-status` (RFC 3464 §2.1) and
//! `message/feedback-report` (RFC 5965 §3.1) parts: header fields, in
//! groups separated by blank lines. A DSN has one group of per-message
//! fields and one per recipient; a feedback report has one.
//!
//! mail-parser hands these parts over as opaque bytes (transfer encoding
//! already undone), so the fields are read here. Folded lines (a line that
//! starts with a space or a tab continues the field above) are joined
//! keeping the break as a newline, so a caller can unfold it the way the
//! field needs. Lines without a colon are skipped: real MTAs write odd
//! things, and one stray line should not lose the whole report.

/// One field: its name as written and its value with folded lines kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    pub name: String,
    pub value: String,
}

/// One group of fields, in order; a name may repeat (`Original-Rcpt-To`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldGroup {
    pub fields: Vec<Field>,
}

impl FieldGroup {
    /// The first value of `name` (case-insensitive), trimmed; `None` when
    /// absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.value.trim())
            .find(|v| !v.is_empty())
    }

    /// Every non-empty value of `name`, trimmed.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.value.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn has(&self, name: &str) -> bool {
        self.fields
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// The groups of `text`, empty ones dropped. Line ends may be CRLF, LF or
/// a bare CR.
pub(crate) fn parse_groups(text: &str) -> Vec<FieldGroup> {
    let normalised = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut groups = Vec::new();
    let mut current = FieldGroup::default();
    // Whether the line above was a field a continuation may extend (not a
    // skipped stray line).
    let mut can_continue = false;
    for line in normalised.split('\n') {
        if line.trim().is_empty() {
            if !current.fields.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
            can_continue = false;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if can_continue {
                if let Some(last) = current.fields.last_mut() {
                    last.value.push('\n');
                    last.value.push_str(line);
                }
            }
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) if is_field_name(name) => {
                current.fields.push(Field {
                    name: name.trim_end().to_owned(),
                    value: value.to_owned(),
                });
                can_continue = true;
            }
            _ => can_continue = false,
        }
    }
    if !current.fields.is_empty() {
        groups.push(current);
    }
    groups
}

/// A field name is printable ASCII without spaces or colons (RFC 5322
/// §3.6.8); trailing white space before the colon is tolerated.
fn is_field_name(name: &str) -> bool {
    let name = name.trim_end();
    !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_fields_and_folded_lines() {
        let groups = parse_groups(
            "Reporting-MTA: dns; cs.utk.edu\r\n\r\nFinal-Recipient: rfc822;a@b\r\n\
             Diagnostic-Code: smtp; 550 not a\r\n  registered user\r\nAction: failed\r\n\r\n\r\n\
             Final-Recipient: rfc822;c@d\nAction: delayed\n",
        );
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].get("reporting-mta"), Some("dns; cs.utk.edu"));
        assert_eq!(
            groups[1].get("Diagnostic-Code"),
            Some("smtp; 550 not a\n  registered user")
        );
        assert_eq!(groups[2].get("ACTION"), Some("delayed"));
    }

    #[test]
    fn stray_lines_are_skipped_with_their_continuations() {
        let groups = parse_groups("Action: failed\nnot a field\n  still not\nStatus: 5.0.0\n");
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].get("Action"), Some("failed"));
        assert_eq!(groups[0].get("Status"), Some("5.0.0"));
        assert_eq!(groups[0].fields.len(), 2);
    }

    #[test]
    fn repeated_fields_are_all_kept() {
        let groups = parse_groups("Original-Rcpt-To: <a@b>\nOriginal-Rcpt-To: c@d\nX: \n");
        let all: Vec<_> = groups[0].all("original-rcpt-to").collect();
        assert_eq!(all, ["<a@b>", "c@d"]);
        assert_eq!(groups[0].get("X"), None);
        assert!(groups[0].has("x"));
    }
}
