//! Text utilities: an example that exercises records, variants, enums, options,
//! results, lists, tuples and flags across the JSON boundary.

wit_bindgen::generate!({ path: "wit", world: "text-tools" });

use exports::warden_examples::text_tools::text::{
    CaseStyle, Guest, MatchOptions, SlugOptions, Stats, Token,
};

struct TextTools;

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
}

impl Guest for TextTools {
    fn convert_case(text: String, style: CaseStyle) -> String {
        match style {
            CaseStyle::Lower => text.to_lowercase(),
            CaseStyle::Upper => text.to_uppercase(),
            CaseStyle::Title => words(&text)
                .map(|word| {
                    let mut chars = word.chars();
                    match chars.next() {
                        Some(first) => first
                            .to_uppercase()
                            .chain(chars.flat_map(char::to_lowercase))
                            .collect(),
                        None => String::new(),
                    }
                })
                .collect::<Vec<String>>()
                .join(" "),
            CaseStyle::Snake => words(&text)
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
                .join("_"),
            CaseStyle::Kebab => words(&text)
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
                .join("-"),
        }
    }

    fn count(text: String) -> Stats {
        let longest_word = words(&text)
            .fold(None::<&str>, |best, word| match best {
                Some(best) if best.chars().count() >= word.chars().count() => Some(best),
                _ => Some(word),
            })
            .map(str::to_owned);
        Stats {
            words: words(&text).count() as u32,
            lines: text.lines().count() as u32,
            chars: text.chars().count() as u32,
            bytes: text.len() as u32,
            longest_word,
        }
    }

    fn tokenize(text: String) -> Vec<Token> {
        let mut tokens = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                let mut run = 0;
                while chars.next_if(|c| c.is_whitespace()).is_some() {
                    run += 1;
                }
                tokens.push(Token::Whitespace(run));
            } else if c.is_ascii_digit() {
                let mut number = String::new();
                while let Some(c) = chars.next_if(|c| c.is_ascii_digit() || *c == '.') {
                    number.push(c);
                }
                match number.parse() {
                    Ok(value) => tokens.push(Token::Number(value)),
                    Err(_) => tokens.push(Token::Word(number)),
                }
            } else if c.is_alphanumeric() {
                let mut word = String::new();
                while let Some(c) = chars.next_if(|c| c.is_alphanumeric()) {
                    word.push(c);
                }
                tokens.push(Token::Word(word));
            } else {
                chars.next();
                tokens.push(Token::Punctuation(c));
            }
        }
        tokens
    }

    fn slugify(text: String, options: SlugOptions) -> Result<String, String> {
        let separator = options.separator.unwrap_or('-');
        let mut slug = words(&text)
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join(&separator.to_string());
        if let Some(max) = options.max_length {
            slug = slug.chars().take(usize::from(max)).collect();
            slug = slug.trim_end_matches(separator).to_owned();
        }
        if slug.is_empty() {
            Err(format!("nothing usable in {text:?}"))
        } else {
            Ok(slug)
        }
    }

    fn word_frequencies(text: String, top: u8) -> Vec<(String, u32)> {
        let mut counts = std::collections::BTreeMap::<String, u32>::new();
        for word in words(&text) {
            *counts.entry(word.to_lowercase()).or_default() += 1;
        }
        let mut ranked: Vec<(String, u32)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(usize::from(top));
        ranked
    }

    fn find(text: String, needle: String, options: MatchOptions) -> Vec<u32> {
        if needle.is_empty() {
            return Vec::new();
        }
        let fold = |s: &str| {
            if options.contains(MatchOptions::CASE_INSENSITIVE) {
                s.to_lowercase()
            } else {
                s.to_owned()
            }
        };
        let haystack: Vec<char> = fold(&text).chars().collect();
        let needle: Vec<char> = fold(&needle).chars().collect();
        let boundary = |i: usize| i >= haystack.len() || !haystack[i].is_alphanumeric();
        (0..haystack.len().saturating_sub(needle.len() - 1))
            .filter(|&i| haystack[i..].starts_with(&needle))
            .filter(|&i| {
                !options.contains(MatchOptions::WHOLE_WORD)
                    || ((i == 0 || boundary(i - 1)) && boundary(i + needle.len()))
            })
            .map(|i| i as u32)
            .collect()
    }
}

export!(TextTools);
