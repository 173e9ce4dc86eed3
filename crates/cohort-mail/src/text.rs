//! The plain-text part, generated from the rendered HTML: what a reader
//! without HTML sees, links as numbered references.

/// Line width of the plain-text part.
const WIDTH: usize = 78;

/// The plain text of `html`.
pub fn plain_text(html: &str) -> String {
    // Raw mode: layout tables read as one column, in source order; links
    // never wrapped, or a reader's client would break them.
    let text = html2text::config::plain()
        .raw_mode(true)
        .no_link_wrapping()
        .allow_width_overflow()
        .string_from_read(html.as_bytes(), WIDTH)
        .unwrap_or_else(|_| String::from_utf8_lossy(html.as_bytes()).into_owned());
    // Blank runs left by layout tables.
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_owned() + "\n"
}
