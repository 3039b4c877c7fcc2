//! Text from the server or from a plugin, made safe to print on a terminal:
//! control characters (escape sequences, carriage returns, newlines in a
//! one-line field) are shown escaped, never interpreted, so no description,
//! log line or reason can repaint what the terminal shows; and so are the
//! characters that reorder or hide text (bidirectional overrides,
//! zero-width characters), which the server refuses in new text but older
//! rows or a plugin's output may hold.

use std::borrow::Cow;
use std::fmt::Write as _;
use warden_registry::reorders_or_hides;

/// `text` with every control character escaped (`\n`, `\u{1b}`, ...), and
/// every character that reorders or hides text (`\u{202e}`, ...).
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() || reorders_or_hides(c)) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(shown, "{}", c.escape_debug());
        } else if reorders_or_hides(c) {
            let _ = write!(shown, "{}", c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

/// `text` as lines, each made printable: for multi-line plugin output.
pub fn printable_lines(text: &str) -> impl Iterator<Item = Cow<'_, str>> {
    text.split('\n').map(printable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_run() {
        assert_eq!(printable("plain text"), "plain text");
        assert_eq!(
            printable("ok\n\u{1b}[8mhidden\r"),
            "ok\\n\\u{1b}[8mhidden\\r"
        );
        assert_eq!(printable("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(
            printable("Greets \u{202e}nimda\u{202c}\u{200b}"),
            "Greets \\u{202e}nimda\\u{202c}\\u{200b}"
        );
        let lines: Vec<_> = printable_lines("a\n\u{1b}[2Kb").collect();
        assert_eq!(lines, ["a", "\\u{1b}[2Kb"]);
    }
}
