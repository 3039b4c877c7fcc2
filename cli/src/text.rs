//! Text from the server or from a plugin, made safe to print on a terminal:
//! control characters (escape sequences, carriage returns, newlines in a
//! one-line field) are shown escaped, never interpreted, so no description,
//! log line or reason can repaint what the terminal shows.

use std::borrow::Cow;

/// `text` with every control character escaped (`\n`, `\u{1b}`, ...).
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .flat_map(char::escape_debug)
            .collect::<String>(),
    )
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
        let lines: Vec<_> = printable_lines("a\n\u{1b}[2Kb").collect();
        assert_eq!(lines, ["a", "\\u{1b}[2Kb"]);
    }
}
