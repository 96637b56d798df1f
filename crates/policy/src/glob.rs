//! Wildcard patterns as IAM writes them: `*` for any run of characters, `?` for one.

use std::borrow::Cow;

/// One element of a compiled pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    /// Exactly this character (already case-folded when the pattern ignores case).
    Char(char),
    /// Exactly one character, whichever it is.
    One,
    /// Any run of characters, including none.
    Many,
}

/// A compiled wildcard pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Glob {
    /// `*` alone: matches everything.
    Any,
    /// No wildcard: plain comparison.
    Exact(String),
    /// At least one wildcard.
    Pattern(Vec<Token>),
}

impl Glob {
    /// Compiles `text`, where `*` and `?` are wildcards and every other character is literal.
    pub fn compile(text: &str, fold: bool) -> Glob {
        Glob::from_tokens(tokenize(text, fold))
    }

    /// Builds a pattern from tokens, choosing the cheapest way to match them.
    pub fn from_tokens(tokens: Vec<Token>) -> Glob {
        if tokens == [Token::Many] {
            return Glob::Any;
        }
        if tokens.iter().all(|token| matches!(token, Token::Char(_))) {
            let text = tokens
                .iter()
                .filter_map(|token| match token {
                    Token::Char(c) => Some(*c),
                    _ => None,
                })
                .collect();
            return Glob::Exact(text);
        }
        Glob::Pattern(tokens)
    }

    /// Whether `text` matches; with `fold`, text characters are case-folded first (the
    /// pattern must then have been compiled with `fold` too).
    pub fn matches(&self, text: &str, fold: bool) -> bool {
        match self {
            Glob::Any => true,
            // The pattern is folded already, so ASCII text needs only its own folding.
            Glob::Exact(exact) if fold && text.is_ascii() => exact.eq_ignore_ascii_case(text),
            Glob::Exact(exact) if fold => exact.chars().eq(text.chars().map(fold_char)),
            Glob::Exact(exact) => exact == text,
            Glob::Pattern(tokens) if text.is_ascii() => match_ascii(tokens, text.as_bytes(), fold),
            Glob::Pattern(tokens) => match_tokens(tokens, text, fold),
        }
    }
}

/// Turns pattern text into tokens.
pub(crate) fn tokenize(text: &str, fold: bool) -> Vec<Token> {
    text.chars()
        .map(|c| match c {
            '*' => Token::Many,
            '?' => Token::One,
            c if fold => Token::Char(fold_char(c)),
            c => Token::Char(c),
        })
        .collect()
}

/// Case-folds a whole text the way compiled patterns are folded, borrowing when it is
/// folded already (action names usually are after the first decision).
pub(crate) fn fold_text(text: &str) -> Cow<'_, str> {
    if text.is_ascii() && !text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().map(fold_char).collect())
}

/// Case-folds one character; characters whose lower case is several characters keep the
/// first, which is exact for everything a policy document may contain (up to U+00FF).
pub(crate) fn fold_char(c: char) -> char {
    if c.is_ascii() {
        c.to_ascii_lowercase()
    } else {
        c.to_lowercase().next().unwrap_or(c)
    }
}

/// Greedy matching that remembers only the latest `*`: when a later literal fails, the
/// latest star takes one more character. Because a star can absorb anything, retrying
/// earlier stars can never succeed where the latest one failed, so this is exact and
/// runs in O(pattern × text) at worst.
fn match_tokens(tokens: &[Token], text: &str, fold: bool) -> bool {
    let fits = |token: Token, c: char| match token {
        Token::One => true,
        Token::Char(p) if fold => p == fold_char(c),
        Token::Char(p) => p == c,
        Token::Many => false,
    };
    let (mut t, mut s) = (0, 0);
    let mut resume: Option<(usize, usize)> = None;

    loop {
        let next = text[s..].chars().next();
        match (tokens.get(t), next) {
            (Some(Token::Many), _) => {
                t += 1;
                resume = Some((t, s));
                continue;
            }
            (Some(&token), Some(c)) if fits(token, c) => {
                t += 1;
                s += c.len_utf8();
                continue;
            }
            (None, None) => return true,
            _ => {}
        }
        let Some((after_star, from)) = resume else {
            return false;
        };
        let Some(skipped) = text[from..].chars().next() else {
            return false;
        };
        resume = Some((after_star, from + skipped.len_utf8()));
        t = after_star;
        s = from + skipped.len_utf8();
    }
}

/// [`match_tokens`] for ASCII text, a byte at a time: most names and tags are ASCII,
/// and skipping UTF-8 decoding makes matching several times faster.
fn match_ascii(tokens: &[Token], text: &[u8], fold: bool) -> bool {
    let fits = |token: Token, byte: u8| match token {
        Token::One => true,
        Token::Char(c) if fold => c == char::from(byte.to_ascii_lowercase()),
        Token::Char(c) => c == char::from(byte),
        Token::Many => false,
    };
    let (mut t, mut s) = (0, 0);
    let mut resume: Option<(usize, usize)> = None;

    loop {
        match tokens.get(t) {
            Some(Token::Many) => {
                t += 1;
                resume = Some((t, s));
                continue;
            }
            Some(&token) if s < text.len() && fits(token, text[s]) => {
                t += 1;
                s += 1;
                continue;
            }
            None if s == text.len() => return true,
            _ => {}
        }
        match resume {
            Some((after_star, from)) if from < text.len() => {
                resume = Some((after_star, from + 1));
                t = after_star;
                s = from + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Obviously-correct recursive matcher to compare against.
    fn reference(pattern: &[char], text: &[char]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some(('*', rest)) => (0..=text.len()).any(|skip| reference(rest, &text[skip..])),
            Some(('?', rest)) => !text.is_empty() && reference(rest, &text[1..]),
            Some((c, rest)) => text.first() == Some(c) && reference(rest, &text[1..]),
        }
    }

    #[test]
    fn star_matches_empty_and_question_mark_needs_one_character() {
        assert!(Glob::compile("ssm:*", false).matches("ssm:", false));
        assert!(Glob::compile("a?c", false).matches("abc", false));
        assert!(!Glob::compile("a?c", false).matches("ac", false));
        assert!(Glob::compile("*", false).matches("", false));
    }

    #[test]
    fn folding_makes_matching_case_insensitive() {
        let glob = Glob::compile("SSM:Send*", true);

        assert!(glob.matches("ssm:sendcommand", true));
        assert!(glob.matches("SSM:SENDCOMMAND", true));
        assert!(!glob.matches("SSM:SENDCOMMAND", false));
    }

    #[test]
    fn handles_multibyte_text() {
        assert!(Glob::compile("caf?", false).matches("café", false));
        assert!(Glob::compile("*é*", false).matches("résumé", false));
    }

    proptest! {
        #[test]
        fn agrees_with_reference_matcher(
            pattern in "[ab*?:]{0,8}",
            text in "[ab:é]{0,10}",
        ) {
            let chars: Vec<char> = pattern.chars().collect();
            let text_chars: Vec<char> = text.chars().collect();
            let expected = reference(&chars, &text_chars);

            prop_assert_eq!(Glob::compile(&pattern, false).matches(&text, false), expected);
        }

        #[test]
        fn byte_matching_agrees_with_char_matching(
            pattern in "[aB*?é]{0,8}",
            text in "[abB]{0,10}",
            fold in any::<bool>(),
        ) {
            let Glob::Pattern(tokens) = Glob::compile(&pattern, fold) else {
                return Ok(());
            };

            prop_assert_eq!(
                match_ascii(&tokens, text.as_bytes(), fold),
                match_tokens(&tokens, &text, fold)
            );
        }

        #[test]
        fn folded_matching_agrees_with_lowercased_reference(
            pattern in "[aB*?]{0,6}",
            text in "[Ab]{0,8}",
        ) {
            let chars: Vec<char> = pattern.to_lowercase().chars().collect();
            let text_chars: Vec<char> = text.to_lowercase().chars().collect();
            let expected = reference(&chars, &text_chars);

            prop_assert_eq!(Glob::compile(&pattern, true).matches(&text, true), expected);
        }
    }
}
