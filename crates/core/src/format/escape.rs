//! Escaping of values for each format, and the exact inverse for the
//! parsers: whatever bytes a value holds, the written line stays one line,
//! no value can forge a field, and the parser gets the bytes back.
//!
//! | format  | written                                   | escapes                                |
//! |---------|-------------------------------------------|----------------------------------------|
//! | text    | bare if only `[A-Za-z0-9._:/@+-[]]`, else `"..."` | `\"` `\\`, `\xHH` for bytes < 0x20, 0x7f, >= 0x80 |
//! | RFC 5424| `"..."` (PARAM-VALUE)                     | `\"` `\\` `\]` (RFC 5424 6.3.3), `\xHH` for bytes < 0x20, 0x7f, bytes that are not UTF-8 and the bytes of [`is_deceptive`] characters |
//! | JSON    | a JSON string                             | `\"` `\\`, `\u00XX` for controls, `\uXXXX` for [`is_deceptive`] characters; see [`write_json_bytes`] for byte strings |

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex_escape(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(&[
        b'\\',
        b'x',
        HEX[usize::from(b >> 4)],
        HEX[usize::from(b & 15)],
    ]);
}

fn push_json_control(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(&[
        b'\\',
        b'u',
        b'0',
        b'0',
        HEX[usize::from(b >> 4)],
        HEX[usize::from(b & 15)],
    ]);
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte that `\xHH` at `s[at..]` (pointing at the `x`) stands for.
fn hex_pair(s: &[u8], at: usize) -> Option<u8> {
    match (s.get(at), s.get(at + 1), s.get(at + 2)) {
        (Some(b'x'), Some(&h), Some(&l)) => Some(hex_value(h)? << 4 | hex_value(l)?),
        _ => None,
    }
}

/// Whether `b` may appear in a bare (unquoted) text value.
pub fn is_bare_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._:/@+-[]".contains(&b)
}

/// Whether `value` is written bare in the text format: not empty, and made
/// only of `[A-Za-z0-9._:/@+\-\[\]]`.
pub fn is_bare(value: &[u8]) -> bool {
    !value.is_empty() && value.iter().all(|&b| is_bare_byte(b))
}

/// Appends a text-format value. A value made only of
/// `[A-Za-z0-9._:/@+\-\[\]]` is written bare; any other (including the
/// empty value) is written in double quotes with `\"`, `\\`, and `\xHH`
/// (lowercase hex) for bytes below 0x20, 0x7f and bytes from 0x80 up. The
/// result is printable ASCII without a line break, and
/// [`unquote_value`] gives the bytes back exactly.
pub fn write_value(out: &mut Vec<u8>, value: &[u8]) {
    if is_bare(value) {
        out.extend_from_slice(value);
        return;
    }
    out.reserve(value.len() + 2);
    out.push(b'"');
    let mut run = 0;
    for (i, &b) in value.iter().enumerate() {
        if matches!(b, 0x20..=0x7e) && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&value[run..i]);
        if b == b'"' || b == b'\\' {
            out.extend_from_slice(&[b'\\', b]);
        } else {
            push_hex_escape(out, b);
        }
        run = i + 1;
    }
    out.extend_from_slice(&value[run..]);
    out.push(b'"');
}

/// The inverse of [`write_value`]'s quoting: takes the bytes between the
/// quotes and undoes `\"`, `\\` and `\xHH`. `None` for any other backslash
/// sequence, or an unescaped `"`.
pub fn unquote_value(inner: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while let Some(&b) = inner.get(i) {
        match b {
            b'\\' => match inner.get(i + 1) {
                Some(&c @ (b'"' | b'\\')) => {
                    out.push(c);
                    i += 2;
                }
                _ => {
                    out.push(hex_pair(inner, i + 1)?);
                    i += 4;
                }
            },
            b'"' => return None,
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Appends an RFC 5424 PARAM-VALUE with its double quotes. `"`, `\` and `]`
/// are escaped with a backslash as RFC 5424 6.3.3 requires; control bytes
/// (below 0x20, and 0x7f) and bytes that are not part of valid UTF-8 are
/// written as `\xHH`, so the value is valid UTF-8 on one line. A generic
/// RFC 5424 reader sees such a byte as the four characters `\xHH` (a
/// backslash not followed by `"`, `\` or `]` is literal); [`unescape_sd_value`]
/// gives the bytes back exactly, since a literal backslash is always `\\`.
pub fn write_sd_value(out: &mut Vec<u8>, value: &[u8]) {
    out.reserve(value.len() + 2);
    out.push(b'"');
    for chunk in value.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        let mut run = 0;
        for (i, &b) in valid.iter().enumerate() {
            // Continuation bytes never start a character: only lead bytes
            // are looked at.
            if b >= 0x80 {
                if let Some(len) = deceptive_at(valid, i) {
                    out.extend_from_slice(&valid[run..i]);
                    for &byte in &valid[i..i + len] {
                        push_hex_escape(out, byte);
                    }
                    run = i + len;
                }
                continue;
            }
            let backslashed = matches!(b, b'"' | b'\\' | b']');
            if !backslashed && b >= 0x20 && b != 0x7f {
                continue;
            }
            out.extend_from_slice(&valid[run..i]);
            if backslashed {
                out.extend_from_slice(&[b'\\', b]);
            } else {
                push_hex_escape(out, b);
            }
            run = i + 1;
        }
        out.extend_from_slice(&valid[run..]);
        for &b in chunk.invalid() {
            push_hex_escape(out, b);
        }
    }
    out.push(b'"');
}

/// The inverse of [`write_sd_value`]: takes the bytes between the quotes,
/// undoes `\"`, `\\`, `\]` and `\xHH`, and keeps any other backslash as a
/// literal one (RFC 5424 6.3.3).
pub fn unescape_sd_value(inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while let Some(&b) = inner.get(i) {
        if b == b'\\' {
            if let Some(&c @ (b'"' | b'\\' | b']')) = inner.get(i + 1) {
                out.push(c);
                i += 2;
                continue;
            }
            if let Some(byte) = hex_pair(inner, i + 1) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Whether `c` can make a line read differently from what it holds: the
/// Unicode line and paragraph separators and NEL (a viewer may break the
/// line there), and the bidirectional controls (they reorder what follows
/// on screen, so a forged-looking field could appear). Every format
/// escapes them; the readers give them back.
pub fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// The length in bytes of the deceptive character (see [`is_deceptive`])
/// that starts at `s[i]`, if one does; `s` is valid UTF-8.
fn deceptive_at(s: &[u8], i: usize) -> Option<usize> {
    let len = match s[i] {
        0xc2 | 0xd8 => 2,
        0xe2 => 3,
        _ => return None,
    };
    let c = std::str::from_utf8(s.get(i..i + len)?)
        .ok()?
        .chars()
        .next()?;
    is_deceptive(c).then_some(len)
}

/// Appends the JSON escaping of valid UTF-8 `s`; with `double_backslash`,
/// a backslash stands for two (see [`write_json_bytes`]).
fn json_escape_valid(out: &mut Vec<u8>, s: &[u8], double_backslash: bool) {
    let mut run = 0;
    for (i, &b) in s.iter().enumerate() {
        if b >= 0x80 {
            if let Some(len) = deceptive_at(s, i) {
                out.extend_from_slice(&s[run..i]);
                let c = std::str::from_utf8(&s[i..i + len])
                    .map_or(0, |t| t.chars().next().map_or(0, u32::from));
                out.extend_from_slice(format!("\\u{c:04x}").as_bytes());
                run = i + len;
            }
            continue;
        }
        if b >= 0x20 && b != 0x7f && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&s[run..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' if double_backslash => out.extend_from_slice(b"\\\\\\\\"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => push_json_control(out, b),
        }
        run = i + 1;
    }
    out.extend_from_slice(&s[run..]);
}

/// Appends `s` as a JSON string with its quotes: `\"`, `\\`, and `\u00XX`
/// for control characters (below 0x20, and 0x7f). Everything else is
/// written as it is (UTF-8).
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    json_escape_valid(out, s.as_bytes(), false);
    out.push(b'"');
}

/// Appends a byte string as a JSON string, reversibly.
///
/// JSON strings hold Unicode text only, and writing an invalid byte as
/// `\u00XX` would turn it into a different, valid character that cannot be
/// told apart from the real one. So the *decoded* JSON string is the input
/// with each backslash doubled and each byte that is not part of valid UTF-8
/// written as the four characters `\xHH` (in the JSON text: `\\xHH`). Valid
/// UTF-8 is kept as it is; controls are escaped as in [`write_json_str`].
/// For valid input without backslashes the decoded string equals the input.
/// [`unescape_json_bytes`] applied to the decoded string gives the bytes back.
pub fn write_json_bytes(out: &mut Vec<u8>, value: &[u8]) {
    out.reserve(value.len() + 2);
    out.push(b'"');
    for chunk in value.utf8_chunks() {
        json_escape_valid(out, chunk.valid().as_bytes(), true);
        for &b in chunk.invalid() {
            out.extend_from_slice(&[
                b'\\',
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        }
    }
    out.push(b'"');
}

/// The inverse of [`write_json_bytes`], applied to the decoded JSON string:
/// `\\` becomes `\` and `\xHH` the byte; any other backslash is kept.
pub fn unescape_json_bytes(decoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(decoded.len());
    let mut i = 0;
    while let Some(&b) = decoded.get(i) {
        if b == b'\\' {
            if decoded.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
            if let Some(byte) = hex_pair(decoded, i + 1) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

#[cfg(test)]
mod deceptive_tests {
    use crate::config::Format;
    use crate::format::testutil::{header, tcp_start};
    use crate::format::{parse_line, write_syslog};
    use crate::record::{IdentInfo, IdentStatus};

    #[test]
    fn separators_and_bidi_controls_in_a_user_name_are_escaped_and_read_back() {
        let user = "eve\u{2028}ev=end\u{202e}nimda\u{2066}\u{85}x\u{61c}"
            .as_bytes()
            .to_vec();
        let mut rec = tcp_start();
        rec.ident = Some(IdentInfo {
            status: IdentStatus::User,
            user: Some(user.clone()),
            opsys: Some(b"UNIX".to_vec()),
            detail: None,
        });
        for format in [Format::Text, Format::Json, Format::Rfc5424] {
            let mut out = Vec::new();
            write_syslog(format, &header(None), &rec, &mut out);
            let line = String::from_utf8(out).unwrap();
            assert!(
                !line.chars().any(super::is_deceptive),
                "{format:?}: {line:?}"
            );
            let parsed = parse_line(&line).unwrap();
            assert_eq!(
                parsed.record.ident.unwrap().user.unwrap(),
                user,
                "{format:?}: {line}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testutil::{Rng, hostile_values};

    fn text(v: &[u8]) -> String {
        let mut out = Vec::new();
        write_value(&mut out, v);
        String::from_utf8(out).expect("text values are ASCII")
    }

    fn sd(v: &[u8]) -> String {
        let mut out = Vec::new();
        write_sd_value(&mut out, v);
        String::from_utf8(out).expect("SD values are UTF-8")
    }

    fn json_bytes(v: &[u8]) -> String {
        let mut out = Vec::new();
        write_json_bytes(&mut out, v);
        String::from_utf8(out).expect("JSON is UTF-8")
    }

    /// Strips the quotes that the writers add.
    fn inner(s: &str) -> &[u8] {
        let b = s.as_bytes();
        assert!(
            b.len() >= 2 && b[0] == b'"' && b[b.len() - 1] == b'"',
            "{s}"
        );
        &b[1..b.len() - 1]
    }

    #[test]
    fn safe_values_are_bare() {
        assert_eq!(text(b"10.0.0.1:80"), "10.0.0.1:80");
        assert_eq!(text(b"[2001:db8::1]:443"), "[2001:db8::1]:443");
        assert_eq!(text(b"a-b_c.d/e@f+g"), "a-b_c.d/e@f+g");
        assert_eq!(
            text(b"2026-11-21T12:37:42.123456Z"),
            "2026-11-21T12:37:42.123456Z"
        );
    }

    #[test]
    fn other_values_are_quoted() {
        assert_eq!(text(b""), "\"\"");
        assert_eq!(text(b"a b"), "\"a b\"");
        assert_eq!(text(b"x=1"), "\"x=1\"");
        assert_eq!(text(b"say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(text(b"back\\slash"), "\"back\\\\slash\"");
        assert_eq!(text(b"line\nbreak\r"), "\"line\\x0abreak\\x0d\"");
        assert_eq!(text(b"nul\0del\x7f"), "\"nul\\x00del\\x7f\"");
        assert_eq!(text("é".as_bytes()), "\"\\xc3\\xa9\"");
        assert_eq!(text(b"\xff\xfe"), "\"\\xff\\xfe\"");
        assert_eq!(text(b"ev=start nat=dnat"), "\"ev=start nat=dnat\"");
    }

    #[test]
    fn quoted_text_values_cannot_break_out() {
        for v in hostile_values() {
            let s = text(&v);
            assert!(s.bytes().all(|b| (0x20..0x7f).contains(&b)), "{s:?}");
            if !is_bare(&v) {
                let inner = inner(&s);
                // No unescaped quote inside: every `"` follows a backslash
                // that is itself not escaped.
                let mut i = 0;
                while i < inner.len() {
                    match inner[i] {
                        b'\\' => i += 2,
                        b'"' => panic!("unescaped quote in {s:?}"),
                        _ => i += 1,
                    }
                }
                assert_eq!(unquote_value(inner).as_deref(), Some(&v[..]), "{s:?}");
            }
        }
    }

    #[test]
    fn megabyte_values() {
        let mut rng = Rng::new(1);
        let v: Vec<u8> = (0..1 << 20).map(|_| rng.byte()).collect();
        let s = text(&v);
        assert_eq!(unquote_value(inner(&s)).unwrap(), v);
        let s = sd(&v);
        assert_eq!(unescape_sd_value(inner(&s)), v);
        let s = json_bytes(&v);
        let decoded: String = serde_json::from_str(&s).unwrap();
        assert_eq!(unescape_json_bytes(decoded.as_bytes()), v);
        let plain = "a b=\"c\"\n".repeat(1 << 17);
        assert_eq!(
            unquote_value(inner(&text(plain.as_bytes()))).unwrap(),
            plain.as_bytes()
        );
    }

    #[test]
    fn unquote_refuses_bad_escapes() {
        for bad in [
            &b"\\"[..],
            b"\\n",
            b"\\x",
            b"\\x4",
            b"\\x4g",
            b"a\"b",
            b"\\u0041",
        ] {
            assert_eq!(
                unquote_value(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(unquote_value(b"\\x4A\\x4a").unwrap(), b"JJ");
    }

    #[test]
    fn sd_values() {
        assert_eq!(sd(b"plain"), "\"plain\"");
        assert_eq!(sd(b""), "\"\"");
        assert_eq!(sd(b"a\"b\\c]d"), "\"a\\\"b\\\\c\\]d\"");
        assert_eq!(sd(b"[v6]:1"), "\"[v6\\]:1\"");
        assert_eq!(sd("é ü".as_bytes()), "\"é ü\"");
        assert_eq!(sd(b"nl\n\x00\x7f"), "\"nl\\x0a\\x00\\x7f\"");
        assert_eq!(sd(b"bad\xff\xc3"), "\"bad\\xff\\xc3\"");
        for v in hostile_values() {
            let s = sd(&v);
            assert!(!s.contains('\n') && !s.contains('\r'), "{s:?}");
            assert_eq!(unescape_sd_value(inner(&s)), v, "{s:?}");
        }
    }

    #[test]
    fn sd_unescape_keeps_other_backslashes() {
        // RFC 5424 6.3.3: a backslash before any other character is literal.
        assert_eq!(unescape_sd_value(b"a\\nb\\"), b"a\\nb\\");
        assert_eq!(unescape_sd_value(b"\\x4"), b"\\x4");
    }

    #[test]
    fn json_strings_parse_with_serde_json() {
        for s in [
            "",
            "plain",
            "q\"b\\s",
            "\u{0}\u{1f}\u{7f}\n\t",
            "é ü 𝄞 \u{2028}",
        ] {
            let mut out = Vec::new();
            write_json_str(&mut out, s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
            assert!(!out.contains(&b'\n'));
        }
    }

    #[test]
    fn json_bytes_are_reversible() {
        assert_eq!(json_bytes(b"plain"), "\"plain\"");
        assert_eq!(json_bytes(b"\xff"), "\"\\\\xff\"");
        assert_eq!(json_bytes(b"a\\b"), "\"a\\\\\\\\b\"");
        // A literal `\xff` and the byte 0xff stay apart.
        assert_ne!(json_bytes(b"\\xff"), json_bytes(b"\xff"));
        for v in hostile_values() {
            let s = json_bytes(&v);
            assert!(!s.contains('\n'), "{s:?}");
            let decoded: String = serde_json::from_str(&s).unwrap();
            if let Ok(valid) = std::str::from_utf8(&v)
                && !valid.contains('\\')
            {
                assert_eq!(decoded, valid);
            }
            assert_eq!(unescape_json_bytes(decoded.as_bytes()), v, "{s:?}");
        }
    }
}
