//! A small JSON reader for policy documents.
//!
//! General-purpose JSON parsers forget where a value came from and keep only the last of
//! two equal keys. Policies need both: explanations point at the line and column of each
//! statement, and IAM rejects an object that names the same element twice.

/// Deepest nesting accepted; real policies stay under six levels.
const MAX_DEPTH: usize = 32;

/// A place in the document: line and column, both counted from 1, columns in characters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Position {
    /// Line number, from 1.
    pub line: usize,
    /// Column number in characters, from 1.
    pub column: usize,
}

/// One JSON value with the positions of its first and last character.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub kind: Kind,
    pub start: Position,
    pub end: Position,
}

/// The shape of a JSON value; numbers keep their source text.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl Kind {
    /// The JSON type name, for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Number(_) => "a number",
            Kind::String(_) => "a string",
            Kind::Array(_) => "an array",
            Kind::Object(_) => "an object",
        }
    }
}

/// Why the text is not acceptable JSON, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub at: Position,
    pub reason: String,
}

/// Parses a whole document: exactly one value, surrounded by optional whitespace.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut reader = Reader::new(text);
    reader.skip_whitespace();
    let node = reader.value(0)?;

    reader.skip_whitespace();
    if reader.peek().is_some() {
        return Err(reader.error("unexpected text after the end of the document"));
    }
    Ok(node)
}

struct Reader {
    chars: Vec<char>,
    index: usize,
    at: Position,
}

impl Reader {
    fn new(text: &str) -> Self {
        Reader {
            chars: text.chars().collect(),
            index: 0,
            at: Position { line: 1, column: 1 },
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.index).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.index += 1;
        if c == '\n' {
            self.at.line += 1;
            self.at.column = 1;
        } else {
            self.at.column += 1;
        }
        Some(c)
    }

    fn error(&self, reason: impl Into<String>) -> SyntaxError {
        SyntaxError {
            at: self.at,
            reason: reason.into(),
        }
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.bump();
        }
    }

    fn expect(&mut self, wanted: char) -> Result<Position, SyntaxError> {
        let at = self.at;
        match self.peek() {
            Some(c) if c == wanted => {
                self.bump();
                Ok(at)
            }
            Some(c) => Err(self.error(format!("expected '{wanted}' but found '{c}'"))),
            None => Err(self.error(format!("expected '{wanted}' but the document ended"))),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.error("values are nested too deeply"));
        }
        match self.peek() {
            Some('{') => self.object(depth),
            Some('[') => self.array(depth),
            Some('"') => {
                let start = self.at;
                let text = self.string()?;
                Ok(self.node(Kind::String(text), start))
            }
            Some('-' | '0'..='9') => self.number(),
            Some('t') => self.word("true", Kind::Bool(true)),
            Some('f') => self.word("false", Kind::Bool(false)),
            Some('n') => self.word("null", Kind::Null),
            Some(c) => Err(self.error(format!("unexpected character '{c}'"))),
            None => Err(self.error("the document ended where a value was expected")),
        }
    }

    /// Builds a node that started at `start` and whose last character was just read.
    fn node(&self, kind: Kind, start: Position) -> Node {
        let end = Position {
            line: self.at.line,
            column: self.at.column.saturating_sub(1).max(1),
        };
        Node { kind, start, end }
    }

    fn word(&mut self, word: &str, kind: Kind) -> Result<Node, SyntaxError> {
        let start = self.at;
        for wanted in word.chars() {
            if self.peek() != Some(wanted) {
                return Err(self.error(format!("expected '{word}'")));
            }
            self.bump();
        }
        Ok(self.node(kind, start))
    }

    fn object(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        let start = self.expect('{')?;
        let mut members: Vec<(String, Node)> = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some('}') {
            self.bump();
            return Ok(self.node(Kind::Object(members), start));
        }

        loop {
            self.skip_whitespace();
            let key_at = self.at;
            if self.peek() != Some('"') {
                return Err(self.error("expected a quoted member name"));
            }
            let key = self.string()?;
            if members.iter().any(|(name, _)| *name == key) {
                return Err(SyntaxError {
                    at: key_at,
                    reason: format!("duplicate member \"{key}\" in one object"),
                });
            }

            self.skip_whitespace();
            self.expect(':')?;
            self.skip_whitespace();
            let value = self.value(depth + 1)?;
            members.push((key, value));

            self.skip_whitespace();
            match self.bump() {
                Some(',') => continue,
                Some('}') => return Ok(self.node(Kind::Object(members), start)),
                _ => return Err(self.error("expected ',' or '}' after an object member")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        let start = self.expect('[')?;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(']') {
            self.bump();
            return Ok(self.node(Kind::Array(items), start));
        }

        loop {
            self.skip_whitespace();
            items.push(self.value(depth + 1)?);
            self.skip_whitespace();
            match self.bump() {
                Some(',') => continue,
                Some(']') => return Ok(self.node(Kind::Array(items), start)),
                _ => return Err(self.error("expected ',' or ']' after an array item")),
            }
        }
    }

    fn number(&mut self) -> Result<Node, SyntaxError> {
        let start = self.at;
        let mut text = String::new();
        if self.peek() == Some('-') {
            text.push('-');
            self.bump();
        }
        self.digits(&mut text)?;
        if text.trim_start_matches('-').len() > 1 && text.trim_start_matches('-').starts_with('0') {
            return Err(self.error("numbers may not have leading zeros"));
        }
        if self.peek() == Some('.') {
            text.push('.');
            self.bump();
            self.digits(&mut text)?;
        }
        if let Some(e @ ('e' | 'E')) = self.peek() {
            text.push(e);
            self.bump();
            if let Some(sign @ ('+' | '-')) = self.peek() {
                text.push(sign);
                self.bump();
            }
            self.digits(&mut text)?;
        }
        Ok(self.node(Kind::Number(text), start))
    }

    fn digits(&mut self, text: &mut String) -> Result<(), SyntaxError> {
        let before = text.len();
        while let Some(c @ '0'..='9') = self.peek() {
            text.push(c);
            self.bump();
        }
        if text.len() == before {
            return Err(self.error("expected a digit in a number"));
        }
        Ok(())
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.expect('"')?;
        let mut text = String::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(text),
                Some('\\') => text.push(self.escape()?),
                Some(c) if (c as u32) < 0x20 => {
                    return Err(self.error("control character inside a string"));
                }
                Some(c) => text.push(c),
                None => return Err(self.error("the document ended inside a string")),
            }
        }
    }

    fn escape(&mut self) -> Result<char, SyntaxError> {
        let c = match self.bump() {
            Some('"') => '"',
            Some('\\') => '\\',
            Some('/') => '/',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('u') => return self.unicode_escape(),
            _ => return Err(self.error("invalid escape sequence in a string")),
        };
        Ok(c)
    }

    fn unicode_escape(&mut self) -> Result<char, SyntaxError> {
        let first = self.hex4()?;
        if !(0xD800..0xDC00).contains(&first) {
            return char::from_u32(first).ok_or_else(|| self.error("invalid \\u escape"));
        }

        // A high surrogate must be followed by an escaped low surrogate.
        if self.bump() != Some('\\') || self.bump() != Some('u') {
            return Err(self.error("unpaired surrogate in a \\u escape"));
        }
        let second = self.hex4()?;
        if !(0xDC00..0xE000).contains(&second) {
            return Err(self.error("unpaired surrogate in a \\u escape"));
        }
        let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self
                .bump()
                .and_then(|c| c.to_digit(16))
                .ok_or_else(|| self.error("expected four hex digits after \\u"))?;
            code = code * 16 + digit;
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_positions_of_objects() {
        let node = parse("{\n  \"a\": {\"b\": 1}\n}").expect("valid json");
        let Kind::Object(members) = node.kind else {
            panic!("expected an object");
        };
        let inner = &members[0].1;

        assert_eq!(inner.start, Position { line: 2, column: 8 });
        assert_eq!(
            inner.end,
            Position {
                line: 2,
                column: 15
            }
        );
        assert_eq!(node.end, Position { line: 3, column: 1 });
    }

    #[test]
    fn rejects_duplicate_members() {
        let error = parse(r#"{"Effect": "Allow", "Effect": "Deny"}"#).expect_err("duplicate");

        assert!(error.reason.contains("duplicate member \"Effect\""));
        assert_eq!(error.at.column, 21);
    }

    #[test]
    fn decodes_escapes_and_surrogate_pairs() {
        let node = parse(r#""a\u00e9\ud83d\ude00\n""#).expect("valid json");

        assert_eq!(node.kind, Kind::String("a\u{e9}\u{1F600}\n".to_owned()));
    }

    #[test]
    fn rejects_trailing_text_and_deep_nesting() {
        assert!(parse("{} x").is_err());
        assert!(parse(&"[".repeat(100)).is_err());
        assert!(parse("[1,]").is_err());
        assert!(parse("01").is_err());
    }
}
