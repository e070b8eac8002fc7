//! A small strict JSON reader (RFC 8259) for reading JSON lines back (our
//! own records, and the report files `masqlog lookup --reports` reads):
//! objects with their members in order and the raw text of each value,
//! bounded nesting, no panics on any input.

use super::parse::ParseError;

/// How deep arrays and objects may nest.
const MAX_DEPTH: usize = 32;

/// One JSON value. Numbers and the values the parser does not look into
/// (arrays, `true`, `false`, `null`) are kept as their raw text.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonValue<'a> {
    Str(String),
    Num(&'a str),
    Obj(Vec<Member<'a>>),
    Other(&'a str),
}

/// One member of an object: key, value and the raw text of the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Member<'a> {
    pub key: String,
    pub value: JsonValue<'a>,
    pub raw: &'a str,
}

pub struct Reader<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader of `s` starting at byte `pos`, which must be a char
    /// boundary.
    pub fn new(s: &'a str, pos: usize) -> Self {
        Reader { s, pos }
    }

    fn err(&self, what: &'static str) -> ParseError {
        ParseError::Syntax { at: self.pos, what }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), ParseError> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// After optional whitespace, the end of the text: nothing may follow
    /// what was read.
    pub fn end(&mut self) -> Result<(), ParseError> {
        self.ws();
        if self.pos == self.s.len() {
            Ok(())
        } else {
            Err(self.err("text after the value"))
        }
    }

    /// Reads an object at the current position (after optional whitespace).
    pub fn object(&mut self) -> Result<Vec<Member<'a>>, ParseError> {
        self.ws();
        self.object_at(0)
    }

    fn object_at(&mut self, depth: usize) -> Result<Vec<Member<'a>>, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("objects and arrays nest too deep"));
        }
        self.expect(b'{', "expected `{`")?;
        let mut members = Vec::new();
        self.ws();
        if self.eat(b'}') {
            return Ok(members);
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.expect(b':', "expected `:` after a key")?;
            self.ws();
            let start = self.pos;
            let value = self.value(depth + 1)?;
            let raw = self.s.get(start..self.pos).unwrap_or_default();
            members.push(Member { key, value, raw });
            self.ws();
            if self.eat(b',') {
                continue;
            }
            self.expect(b'}', "expected `,` or `}`")?;
            return Ok(members);
        }
    }

    fn array_at(&mut self, depth: usize) -> Result<(), ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("objects and arrays nest too deep"));
        }
        self.expect(b'[', "expected `[`")?;
        self.ws();
        if self.eat(b']') {
            return Ok(());
        }
        loop {
            self.ws();
            self.value(depth + 1)?;
            self.ws();
            if self.eat(b',') {
                continue;
            }
            return self.expect(b']', "expected `,` or `]`");
        }
    }

    fn value(&mut self, depth: usize) -> Result<JsonValue<'a>, ParseError> {
        let start = self.pos;
        match self.peek() {
            Some(b'{') => Ok(JsonValue::Obj(self.object_at(depth)?)),
            Some(b'[') => {
                self.array_at(depth)?;
                Ok(JsonValue::Other(
                    self.s.get(start..self.pos).unwrap_or_default(),
                ))
            }
            Some(b'"') => Ok(JsonValue::Str(self.string()?)),
            Some(b'-' | b'0'..=b'9') => Ok(JsonValue::Num(self.number_here()?)),
            Some(b't' | b'f' | b'n') => {
                for word in ["true", "false", "null"] {
                    if self.s.as_bytes()[start..].starts_with(word.as_bytes()) {
                        self.pos += word.len();
                        return Ok(JsonValue::Other(word));
                    }
                }
                Err(self.err("expected a value"))
            }
            _ => Err(self.err("expected a value")),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Reads a number at the current position (after optional whitespace).
    pub fn number(&mut self) -> Result<&'a str, ParseError> {
        self.ws();
        self.number_here()
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number_here(&mut self) -> Result<&'a str, ParseError> {
        let start = self.pos;
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(self.err("invalid number"));
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        Ok(self.s.get(start..self.pos).unwrap_or_default())
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c) => (c as char).to_digit(16),
                None => None,
            }
            .ok_or_else(|| self.err("invalid `\\u` escape"))?;
            v = v << 4 | d;
            self.pos += 1;
        }
        Ok(v)
    }

    /// Reads a string and decodes its escapes.
    fn string(&mut self) -> Result<String, ParseError> {
        self.expect(b'"', "expected a string")?;
        let mut out = String::new();
        loop {
            let run = self.pos;
            while matches!(self.peek(), Some(c) if c != b'"' && c != b'\\' && c >= 0x20) {
                self.pos += 1;
            }
            // The run stops at an ASCII byte or the end: a char boundary.
            out.push_str(self.s.get(run..self.pos).unwrap_or_default());
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.peek();
                    self.pos += 1;
                    let decoded = match c {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode_escape()?,
                        _ => {
                            self.pos -= 1;
                            return Err(self.err("invalid escape in a string"));
                        }
                    };
                    out.push(decoded);
                }
                Some(_) => return Err(self.err("control character in a string")),
            }
        }
    }

    /// After `\u`: one code point, or a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, ParseError> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if !(self.eat(b'\\') && self.eat(b'u')) {
                    return Err(self.err("unpaired surrogate in a `\\u` escape"));
                }
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(self.err("unpaired surrogate in a `\\u` escape"));
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.err("unpaired surrogate in a `\\u` escape")),
            c => c,
        };
        char::from_u32(code).ok_or_else(|| self.err("invalid `\\u` escape"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> Result<Vec<Member<'_>>, ParseError> {
        Reader::new(s, 0).object()
    }

    #[test]
    fn reads_members_in_order_with_raw_text() {
        let m =
            read(r#"{"a":1,"b":"x\"y\u00e9\ud834\udd1e","c":{"d":-1.5e3},"e":[1,[2]],"f":null}"#)
                .unwrap();
        let keys: Vec<&str> = m.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c", "e", "f"]);
        assert_eq!(m[0].value, JsonValue::Num("1"));
        assert_eq!(m[1].value, JsonValue::Str("x\"yé𝄞".into()));
        assert_eq!(m[2].raw, r#"{"d":-1.5e3}"#);
        assert_eq!(m[3].value, JsonValue::Other("[1,[2]]"));
        assert_eq!(m[4].value, JsonValue::Other("null"));
        assert_eq!(read(" { } ").unwrap(), vec![]);
    }

    #[test]
    fn end_allows_only_whitespace_after_the_value() {
        let mut r = Reader::new("{\"a\":1} \r\n", 0);
        r.object().unwrap();
        assert_eq!(r.end(), Ok(()));
        let mut r = Reader::new("{\"a\":1} x", 0);
        r.object().unwrap();
        assert_eq!(
            r.end(),
            Err(ParseError::Syntax {
                at: 8,
                what: "text after the value"
            })
        );
    }

    #[test]
    fn refuses_what_json_refuses() {
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":1e}",
            "{\"a\":+1}",
            "{\"a\":\"\n\"}",
            "{\"a\":\"\\x41\"}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\udc00\"}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":tru}",
            "{a:1}",
            "{\"a\":[1 2]}",
        ] {
            assert!(read(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(read(&deep).is_err());
        let ok = format!("{{\"a\":{}1{}}}", "[".repeat(20), "]".repeat(20));
        assert!(read(&ok).is_ok());
    }
}
