//! A ulogd.conf read the way ulogd 2.0.8's `config_parse_file` reads it,
//! quirks included, so that `check-config` sees the values the plugin will
//! get rather than the ones the author meant.
//!
//! What ulogd does (src/conffile.c), and so what this does:
//! - Lines are read with `fgets(line, 255, ...)`: at most 254 bytes at a
//!   time. A piece without its newline (a line of 254 bytes or more, or a
//!   last line without a newline) is an error, "line N too long", that
//!   fails the section being read.
//! - A piece whose first byte is `#` is a comment. `  # x` (indented) is not
//!   a comment: its first word is `#`, which names no key, so it is ignored.
//! - A section starts at the first line whose first word, split at space,
//!   tab, CR, LF, `[` and `]`, is the section's name (`[masq1]`), and ends
//!   at the next line whose first word, split at space, `=`, tab, CR and LF,
//!   starts with `[`.
//! - In a section, the first word is the key and the next word the value:
//!   `key=value`, `key = value`, `key="a value"` are the same. Only these two
//!   words count: `key=a b` is `a`, and anything after is ignored.
//! - `key=` (no value) does not give an empty value: the word buffer still
//!   holds the key, so the value is the key's own name (`hostname=` sets
//!   hostname to `hostname`). `key=""` is the empty string.
//! - A key named twice fails the section ("occurred more than once"), except
//!   `plugin` and `stack` in `[global]`; unknown keys are ignored.
//! - Integers are `strtoul(value, NULL, 0)` stored in an `int`: `0x10` is
//!   16, `010` is 8, `abc` is 0, `12abc` is 12.
//! - A string value of 225 bytes or more fails the section.

/// The size of ulogd's line buffer (`LINE_LEN`): `fgets` reads at most one
/// byte less.
pub const LINE_LEN: usize = 255;
/// The size of a string value (`CONFIG_VAL_STRING_LEN`): a value must be
/// shorter.
pub const STRING_LEN: usize = 225;
/// The longest id ulogd takes in a `stack=` element (`ULOGD_MAX_KEYLEN`
/// less one).
pub const MAX_ID_LEN: usize = 31;

/// One `key=value` line of a section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number in the file.
    pub line: usize,
    pub key: String,
    /// What ulogd stores (for `key=` without a value: the key's name).
    pub value: String,
    /// `key=` with nothing after it: `value` is the key's name.
    pub missing_value: bool,
}

/// The entries of one section, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// The line that opened it.
    pub line: usize,
    pub entries: Vec<Entry>,
}

impl Section {
    /// Every entry for `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| e.key == key)
    }

    /// The first entry for `key` (ulogd refuses a second one).
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// Why ulogd would refuse to read a section.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SectionError {
    #[error(
        "line {line} is too long for ulogd (254 bytes or more, or the last line without a newline): ulogd stops with \"line too long\""
    )]
    LineTooLong { line: usize },
}

/// A ulogd.conf as bytes, split the way `fgets` splits it.
#[derive(Clone, Debug)]
pub struct ConfFile {
    /// (1-based line number, bytes of the piece including its newline).
    pieces: Vec<(usize, Vec<u8>)>,
}

const SECTION_DELIMS: &[u8] = b" \t\n\r[]";
const KEY_DELIMS: &[u8] = b" =\t\n\r";

impl ConfFile {
    pub fn parse(bytes: &[u8]) -> ConfFile {
        let mut pieces = Vec::new();
        let mut line = 1;
        let mut rest = bytes;
        while !rest.is_empty() {
            let max = LINE_LEN - 1;
            let nl = rest.iter().take(max).position(|&b| b == b'\n');
            let len = match nl {
                Some(i) => i + 1,
                None => rest.len().min(max),
            };
            pieces.push((line, rest[..len].to_vec()));
            if nl.is_some() {
                line += 1;
            }
            rest = &rest[len..];
        }
        ConfFile { pieces }
    }

    /// Reads `[name]` as ulogd does; `Ok(None)` when there is no such
    /// section.
    pub fn section(&self, name: &str) -> Result<Option<Section>, SectionError> {
        let mut pieces = self.pieces.iter();
        let mut start = None;
        for (line, piece) in pieces.by_ref() {
            if piece.first() == Some(&b'#') {
                continue;
            }
            if !piece.contains(&b'\n') {
                return Err(SectionError::LineTooLong { line: *line });
            }
            if let Some((word, _)) = get_word(piece, SECTION_DELIMS)
                && word == name.as_bytes()
            {
                start = Some(*line);
                break;
            }
        }
        let Some(start) = start else {
            return Ok(None);
        };
        let mut entries = Vec::new();
        for (line, piece) in pieces {
            if piece.first() == Some(&b'#') {
                continue;
            }
            if !piece.contains(&b'\n') {
                return Err(SectionError::LineTooLong { line: *line });
            }
            let Some((key, end)) = get_word(piece, KEY_DELIMS) else {
                continue;
            };
            if key.first() == Some(&b'[') {
                break;
            }
            let (value, missing_value) = match get_word(&piece[end..], KEY_DELIMS) {
                Some((v, _)) => (v, false),
                None => (key.clone(), true),
            };
            entries.push(Entry {
                line: *line,
                key: String::from_utf8_lossy(&key).into_owned(),
                value: String::from_utf8_lossy(&value).into_owned(),
                missing_value,
            });
        }
        Ok(Some(Section {
            name: name.to_string(),
            line: start,
            entries,
        }))
    }
}

/// ulogd's `get_word`: skips delimiters; a `"` starts a quoted word that
/// ends at the next `"`; an unquoted word ends at a delimiter. `None` when
/// there is no word or it does not end within the piece. Returns the word
/// and the offset just after it (after the closing quote).
fn get_word(s: &[u8], delims: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut start = None;
    let mut quoted = false;
    for (i, &b) in s.iter().enumerate() {
        if b == b'"' {
            start = Some(i + 1);
            quoted = true;
            break;
        }
        if !delims.contains(&b) {
            start = Some(i);
            break;
        }
    }
    let start = start?;
    let stop = s[start..].iter().position(|&b| {
        if quoted {
            b == b'"'
        } else {
            delims.contains(&b)
        }
    })? + start;
    let end = if quoted { stop + 1 } else { stop };
    Some((s[start..stop].to_vec(), end))
}

/// ulogd's reading of an integer: `strtoul(s, NULL, 0)` stored in an `int`.
pub fn strtoul_int(s: &str) -> i64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if (t.starts_with("0x") || t.starts_with("0X"))
        && t[2..].starts_with(|c: char| c.is_ascii_hexdigit())
    {
        (16, &t[2..])
    } else if t.starts_with('0') {
        (8, t)
    } else {
        (10, t)
    };
    let mut v: u64 = 0;
    let mut overflow = false;
    for c in digits.chars() {
        let Some(d) = c.to_digit(radix) else { break };
        match v
            .checked_mul(u64::from(radix))
            .and_then(|x| x.checked_add(u64::from(d)))
        {
            Some(n) => v = n,
            None => overflow = true,
        }
    }
    if overflow {
        v = u64::MAX;
    } else if neg {
        v = v.wrapping_neg();
    }
    // the int member of the config entry's union keeps the low 32 bits
    i64::from(v as u32 as i32)
}

/// How an integer value reads, for a warning when it is not plain decimal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntSyntax {
    /// Decimal digits only (a leading `+`/`-` allowed).
    Decimal,
    /// `0x..` hexadecimal: fine.
    Hex,
    /// A leading 0 followed by digits: read as octal.
    Octal,
    /// Not a number, or a number followed by other characters: ulogd reads
    /// the leading digits (or 0) and says nothing.
    Garbage,
}

pub fn int_syntax(s: &str) -> IntSyntax {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return if !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()) {
            IntSyntax::Hex
        } else {
            IntSyntax::Garbage
        };
    }
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return IntSyntax::Garbage;
    }
    if t.len() > 1 && t.starts_with('0') {
        if t.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            IntSyntax::Octal
        } else {
            IntSyntax::Garbage
        }
    } else {
        IntSyntax::Decimal
    }
}

/// One `id:PLUGIN` element of a `stack=` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackElement {
    pub id: String,
    pub plugin: String,
}

/// Splits a `stack=` value as ulogd's `create_stack` does (at `,` and
/// newlines, each element at its first `:`). `Err` names the element ulogd
/// rejects with "syntax error".
pub fn parse_stack(value: &str) -> Result<Vec<StackElement>, String> {
    value
        .split([',', '\n'])
        .filter(|t| !t.is_empty())
        .map(|tok| match tok.split_once(':') {
            Some((id, plugin)) if id.len() <= MAX_ID_LEN => Ok(StackElement {
                id: id.to_string(),
                plugin: plugin.to_string(),
            }),
            _ => Err(tok.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> ConfFile {
        ConfFile::parse(text.as_bytes())
    }

    fn values(c: &ConfFile, section: &str) -> Vec<(String, String)> {
        c.section(section)
            .unwrap()
            .unwrap()
            .entries
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect()
    }

    #[test]
    fn keys_values_quotes_and_spaces() {
        let c = conf(
            "[global]\nplugin=\"/a b.so\"\nstack = ct1:NFCT,masq1:MASQLOG\n\n[masq1]\n\
             format=json\ndestination = \"unix:/dev/log\"\ntag=a b c\nhostname=\"\"\n",
        );
        assert_eq!(
            values(&c, "global"),
            [
                ("plugin".into(), "/a b.so".into()),
                ("stack".into(), "ct1:NFCT,masq1:MASQLOG".into())
            ]
        );
        assert_eq!(
            values(&c, "masq1"),
            [
                ("format".into(), "json".into()),
                ("destination".into(), "unix:/dev/log".into()),
                ("tag".into(), "a".into()),
                ("hostname".into(), String::new()),
            ]
        );
    }

    #[test]
    fn an_empty_value_is_the_key_name() {
        let c = conf("[m]\nhostname=\nident_source=   \ntag=\"\"\n");
        let s = c.section("m").unwrap().unwrap();
        assert_eq!(s.entries[0].value, "hostname");
        assert!(s.entries[0].missing_value);
        assert_eq!(s.entries[1].value, "ident_source");
        assert_eq!(s.entries[2].value, "");
        assert!(!s.entries[2].missing_value);
    }

    #[test]
    fn comments_only_in_the_first_column() {
        let c = conf("[m]\n# format=xml\n  # tag=x\nformat=text # trailing\n");
        let s = c.section("m").unwrap().unwrap();
        let keys: Vec<&str> = s.entries.iter().map(|e| e.key.as_str()).collect();
        // the indented one is an entry with the key "#", which names nothing
        assert_eq!(keys, ["#", "format"]);
        assert_eq!(s.get("format").unwrap().value, "text");
    }

    #[test]
    fn sections_end_at_the_next_bracket_and_are_found_by_name() {
        let c = conf("[a]\nx=1\n[b]\nx=2\n  [c]\nx=3\n");
        assert_eq!(values(&c, "a"), [("x".into(), "1".into())]);
        assert_eq!(values(&c, "b"), [("x".into(), "2".into())]);
        assert_eq!(values(&c, "c"), [("x".into(), "3".into())]);
        assert!(c.section("d").unwrap().is_none());
        let s = c.section("b").unwrap().unwrap();
        assert_eq!((s.line, s.entries[0].line), (3, 4));
    }

    #[test]
    fn long_lines_and_a_missing_final_newline_are_errors() {
        let long = format!("[m]\ntag={}\n", "x".repeat(250));
        assert_eq!(
            conf(&long).section("m"),
            Err(SectionError::LineTooLong { line: 2 })
        );
        let just = format!("[m]\ntag={}\n", "x".repeat(249)); // 253 bytes + newline
        assert!(conf(&just).section("m").unwrap().is_some());
        assert_eq!(
            conf("[m]\nformat=text").section("m"),
            Err(SectionError::LineTooLong { line: 2 })
        );
        // a long comment is read in pieces: the rest is an ordinary line
        let comment = format!("# {}\n[m]\nformat=text\n", "y".repeat(300));
        assert_eq!(
            values(&conf(&comment), "m"),
            [("format".into(), "text".into())]
        );
        // the error only matters for sections ulogd reads past it
        let late = "[m]\nformat=text\n[z]\nx=1";
        assert!(conf(late).section("m").unwrap().is_some());
    }

    #[test]
    fn integers_read_like_strtoul() {
        assert_eq!(strtoul_int("65536"), 65536);
        assert_eq!(strtoul_int("0x10"), 16);
        assert_eq!(strtoul_int("010"), 8);
        assert_eq!(strtoul_int("abc"), 0);
        assert_eq!(strtoul_int("12abc"), 12);
        assert_eq!(strtoul_int(" 7"), 7);
        assert_eq!(strtoul_int("-1"), -1);
        assert_eq!(strtoul_int("4294967296"), 0);
        assert_eq!(strtoul_int("99999999999999999999999"), -1);
        assert_eq!(strtoul_int("0x"), 0);
        assert_eq!(int_syntax("65536"), IntSyntax::Decimal);
        assert_eq!(int_syntax("0x00000005"), IntSyntax::Hex);
        assert_eq!(int_syntax("010"), IntSyntax::Octal);
        assert_eq!(int_syntax("0"), IntSyntax::Decimal);
        for bad in ["abc", "12abc", "", "0x", "09", "1.5"] {
            assert_eq!(int_syntax(bad), IntSyntax::Garbage, "{bad}");
        }
    }

    #[test]
    fn stacks_split_like_create_stack() {
        assert_eq!(
            parse_stack("ct1:NFCT,masq1:MASQLOG").unwrap(),
            [
                StackElement {
                    id: "ct1".into(),
                    plugin: "NFCT".into()
                },
                StackElement {
                    id: "masq1".into(),
                    plugin: "MASQLOG".into()
                }
            ]
        );
        assert_eq!(parse_stack("ct1:NFCT,masq1").unwrap_err(), "masq1");
    }
}
