//! A small JSON value for `--json` output (written with the format's own
//! escaping, so untrusted bytes such as IDENT user names stay reversible),
//! and a reader for the flat objects of a JSON-lines report file.

use masqlog_core::format::escape;

/// A JSON value to write.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(String),
    /// Bytes that may not be UTF-8: see `escape::write_json_bytes`.
    Bytes(Vec<u8>),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn obj<const N: usize>(members: [(&str, Json); N]) -> Json {
        Json::Obj(
            members
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    pub fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }

    pub fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Json) -> Json {
        v.map_or(Json::Null, f)
    }

    /// Appends the value, on one line.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Json::Null => out.extend_from_slice(b"null"),
            Json::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Json::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Json::Num(x) if x.is_finite() => out.extend_from_slice(format!("{x}").as_bytes()),
            Json::Num(_) => out.extend_from_slice(b"null"),
            Json::Str(s) => escape::write_json_str(out, s),
            Json::Bytes(b) => escape::write_json_bytes(out, b),
            Json::Arr(v) => {
                out.push(b'[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    x.write(out);
                }
                out.push(b']');
            }
            Json::Obj(m) => {
                out.push(b'{');
                for (i, (k, x)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    escape::write_json_str(out, k);
                    out.push(b':');
                    x.write(out);
                }
                out.push(b'}');
            }
        }
    }

    pub fn to_line(&self) -> String {
        let mut out = Vec::new();
        self.write(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// A scalar of a flat JSON object: strings as their text, numbers and
/// booleans as written, `null` as `None`.
pub type Flat = Vec<(String, Option<String>)>;

struct R<'a> {
    b: &'a [u8],
    i: usize,
}

impl R<'_> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", c as char, self.i))
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .b
            .get(self.i..self.i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or("bad \\u escape")?;
        self.i += 4;
        Ok(h)
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.b.get(self.i).is_some_and(|&c| c != b'"' && c != b'\\') {
                self.i += 1;
            }
            out.push_str(std::str::from_utf8(&self.b[start..self.i]).map_err(|_| "not UTF-8")?);
            match self.b.get(self.i) {
                None => return Err("unterminated string".into()),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                _ => {
                    self.i += 1;
                    let e = *self.b.get(self.i).ok_or("unterminated string")?;
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xd800..0xdc00).contains(&cp)
                                && self.b.get(self.i..self.i + 2) == Some(b"\\u")
                            {
                                self.i += 2;
                                let lo = self.hex4()?;
                                cp = 0x10000
                                    + ((cp - 0xd800) << 10)
                                    + (lo.wrapping_sub(0xdc00) & 0x3ff);
                            }
                            out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                        }
                        _ => return Err("bad escape".into()),
                    }
                }
            }
        }
    }

    fn scalar(&mut self) -> Result<Option<String>, String> {
        self.ws();
        match self.b.get(self.i) {
            Some(b'"') => self.string().map(Some),
            Some(b'{' | b'[') => Err("nested objects and arrays are not read here".into()),
            Some(_) => {
                let start = self.i;
                while self
                    .b
                    .get(self.i)
                    .is_some_and(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.'))
                {
                    self.i += 1;
                }
                let tok = std::str::from_utf8(&self.b[start..self.i]).unwrap_or("");
                match tok {
                    "null" => Ok(None),
                    "" => Err(format!("unexpected byte at {start}")),
                    t => Ok(Some(t.to_string())),
                }
            }
            None => Err("unexpected end".into()),
        }
    }
}

/// Reads a flat JSON object (`{"key": scalar, ...}`), nothing after it.
pub fn parse_flat(s: &str) -> Result<Flat, String> {
    let mut r = R {
        b: s.as_bytes(),
        i: 0,
    };
    r.expect(b'{')?;
    let mut out = Vec::new();
    r.ws();
    if r.b.get(r.i) == Some(&b'}') {
        r.i += 1;
    } else {
        loop {
            let k = r.string()?;
            r.expect(b':')?;
            let v = r.scalar()?;
            out.push((k, v));
            r.ws();
            match r.b.get(r.i) {
                Some(b',') => r.i += 1,
                Some(b'}') => {
                    r.i += 1;
                    break;
                }
                _ => return Err(format!("expected `,` or `}}` at byte {}", r.i)),
            }
        }
    }
    r.ws();
    if r.i != r.b.len() {
        return Err(format!("trailing text at byte {}", r.i));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_serde_json_reads() {
        let v = Json::obj([
            ("a", Json::Int(-5)),
            ("b", Json::str("x\"y\n")),
            ("c", Json::Bytes(b"al\xffice".to_vec())),
            (
                "d",
                Json::Arr(vec![Json::Null, Json::Bool(true), Json::Num(1.5)]),
            ),
        ]);
        let line = v.to_line();
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["a"], -5);
        assert_eq!(back["b"], "x\"y\n");
        assert_eq!(back["c"], "al\\xffice");
        assert_eq!(back["d"][2], 1.5);
    }

    #[test]
    fn flat_objects() {
        let f = parse_flat(r#" {"public":"192.0.2.1:53500", "at":"2026-11-21 13:37:42 CET","remote":null,"n":5,"u":"\u00e9\ud83d\ude00\n"} "#).unwrap();
        assert_eq!(f[0], ("public".into(), Some("192.0.2.1:53500".into())));
        assert_eq!(f[2], ("remote".into(), None));
        assert_eq!(f[3], ("n".into(), Some("5".into())));
        assert_eq!(f[4].1.as_deref(), Some("é😀\n"));
        assert_eq!(parse_flat("{}").unwrap(), vec![]);
        for bad in [
            "",
            "{",
            "{\"a\":}",
            "{\"a\":[1]}",
            "{\"a\":1} x",
            "{\"a\" 1}",
            "[1]",
        ] {
            assert!(parse_flat(bad).is_err(), "{bad}");
        }
    }
}
