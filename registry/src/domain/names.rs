//! Names of organizations and plugins: what the OCI grammar accepts for one
//! path component, kept simple.

/// A name that is not valid for an organization or a plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} {name:?} is not valid: lowercase letters and digits, separated by single . _ or -, at most 64 characters"
)]
pub struct InvalidName {
    /// What was named: `organization`, `plugin`, ...
    pub what: &'static str,
    /// The name given.
    pub name: String,
}

/// Checks a name used for orgs and plugins:
/// `[a-z0-9]+([._-][a-z0-9]+)*`, 1 to 64 characters.
pub fn check_name(what: &'static str, name: &str) -> Result<(), InvalidName> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(InvalidName {
            what,
            name: name.to_owned(),
        })
    }
}

/// Whether `text` is fit to be shown: no control characters (newlines,
/// escape sequences, carriage returns), which could repaint a terminal that
/// prints it, and nothing that reorders or hides what a reader sees
/// ([`reorders_or_hides`]). Every free text a user supplies is checked with
/// this.
pub fn is_plain_text(text: &str) -> bool {
    !text.chars().any(|c| c.is_control() || reorders_or_hides(c))
}

/// Whether `c` changes how the text around it reads without showing
/// itself: the bidirectional embeddings, overrides, isolates and marks
/// (U+202A-202E, U+2066-2069, U+200E, U+200F, U+061C), which reorder what
/// follows them (Trojan Source, CVE-2021-42574), and the characters that
/// show nothing or are meant to be ignored (Unicode's default-ignorable code
/// points and the format characters among them: zero-width characters,
/// soft hyphen, fillers, variation selectors, tags, line and paragraph
/// separators, interlinear annotations), which make two different texts
/// look alike.
pub fn reorders_or_hides(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{034f}'
            | '\u{061c}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fffb}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
}

/// Whether `name` is a valid organization or plugin name.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.split(['.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_has_no_control_characters() {
        assert!(is_plain_text("Greets by name — ünïcode is fine"));
        for bad in [
            "a\nb",
            "\u{1b}[8m",
            "cr\r",
            "tab\t",
            "\u{9b}",
            "del\u{7f}",
            "rtl\u{202e}nimda",
            "isolate\u{2067}x\u{2069}",
            "zero\u{200b}width",
            "bom\u{feff}",
            "arabic mark\u{61c}",
            "soft\u{ad}hyphen",
            "filler\u{3164}",
            "tag\u{e0041}",
            "selector\u{fe0f}",
            "line\u{2028}separator",
        ] {
            assert!(!is_plain_text(bad), "{bad:?}");
        }
    }

    #[test]
    fn names_follow_the_oci_path_component_grammar() {
        for good in [
            "acme",
            "a",
            "hello-world",
            "text.utils",
            "a_b",
            &"x".repeat(64),
        ] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in [
            "",
            "Acme",
            "a--b",
            "-a",
            "a-",
            "a/b",
            "a b",
            "ü",
            &"x".repeat(65),
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
