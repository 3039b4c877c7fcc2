//! A plugin that depends on another: every function it uses comes from the
//! `text` interface of the `acme/text-tools` plugin, which Warden links at
//! run time. It has no capability of its own, and text-tools gets none of
//! its: each runs with what its own approval granted.

wit_bindgen::generate!({
    path: ["../text-tools/wit", "wit"],
    world: "warden-examples:word-report/word-report",
    generate_all,
});

use warden_examples::text_tools::text::{self, CaseStyle, MatchOptions, SlugOptions};

struct WordReport;

impl Guest for WordReport {
    fn summarize(body: String) -> Summary {
        let first_line = body.lines().next().unwrap_or_default();
        let title = text::convert_case(first_line, CaseStyle::Title);
        let slug = text::slugify(
            &title,
            SlugOptions {
                max_length: Some(60),
                separator: None,
            },
        )
        .ok();
        let stats = text::count(&body);
        let first_word_mentions = first_line.split_whitespace().next().map_or(0, |word| {
            let options = MatchOptions::CASE_INSENSITIVE | MatchOptions::WHOLE_WORD;
            text::find(&body, word, options).len() as u32
        });
        Summary {
            title,
            slug,
            words: stats.words,
            longest_word: stats.longest_word,
            top_words: text::word_frequencies(&body, 3),
            first_word_mentions,
        }
    }
}

export!(WordReport);
