//! RFC 1413 replies: one line from an identd, parsed strictly into an
//! [`IdentReply`]. Pure and total: any byte string gives `Ok` or `Err`, never a
//! panic.
//!
//! # The grammar accepted
//!
//! ```text
//! reply       = port-pair ":" "USERID" ":" opsys-field ":" user-id
//!             / port-pair ":" "ERROR"  ":" error-type
//! port-pair   = port "," port            ; each 1-5 digits, at most 65535
//! opsys-field = token [ "," token ]      ; opsys, then the optional charset
//! error-type  = token                    ; kept verbatim, known or not
//! token       = 1*64 ( %x21-7E except ":" )   ; no "," in opsys-field
//! user-id     = 1*( any octet except NUL, CR, LF )
//! ```
//!
//! Blanks (space, tab) are allowed around every token and around the port
//! numbers. The reply types `USERID` and `ERROR` are matched without regard to
//! case; every other token is kept exactly as received.
//!
//! Choices where RFC 1413 leaves room, in its words and ours:
//! - The port pair must echo the query (client port first, then remote port);
//!   anything else is [`ProtocolError::PortMismatch`], as an answer about
//!   another connection must never be logged against this one.
//! - The user-id. The RFC says "everything after the colon after the
//!   operating system type until the terminating CR/LF is taken as part of the
//!   user ID", but its own examples (`6193, 23 : USERID : UNIX : stjohns`) put
//!   a blank after that colon, and clients in the field (squid, s6-networking)
//!   skip it. We skip all leading blanks and keep everything after them
//!   exactly, trailing blanks included: the bytes are opaque, not UTF-8, and
//!   may hold quotes, `=`, control characters; escaping them is the job of the
//!   line formats. A user-id that truly begins with a blank cannot be told
//!   apart and loses it. NUL, CR and LF are excluded by the RFC's
//!   `octet-characters` and are refused, whatever the charset.
//! - The RFC caps user-ids at 512 octets for servers ("a client MUST accept at
//!   least 512"); we accept any length. The whole line is capped by the
//!   reader (`QueryConfig::max_reply`, 1000 bytes after the RFC's "clients
//!   should feel free to abort a connection if they receive 1000 characters
//!   without receiving an `<EOL>`"), not here.
//! - Error types other than `INVALID-PORT`, `NO-USER`, `HIDDEN-USER` and
//!   `UNKNOWN-ERROR` (the RFC asks for `X-` prefixes, servers send what they
//!   like) are kept verbatim in [`IdentReply::Error`].
//! - The RFC knows no quoting; a backslash is an ordinary token character.
//!
//! The line handed in is the bytes before the end of line; one trailing LF or
//! CR LF, if still there, is ignored.

/// The most characters the RFC allows in a token (opsys, charset, error type).
pub const MAX_TOKEN: usize = 64;

/// How many bytes of a hostile value an error message quotes.
const EXCERPT: usize = 32;

/// What an identd answered about a connection, after the port pair was
/// checked against the query.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdentReply {
    /// `USERID`: the owner of the connection.
    User {
        /// Operating system token, e.g. `UNIX`, `OTHER` (verbatim).
        opsys: Vec<u8>,
        /// Character set token of the user-id, when given (absent means
        /// US-ASCII in the RFC's terms).
        charset: Option<Vec<u8>>,
        /// The user-id, leading blanks removed, otherwise the raw octets.
        user: Vec<u8>,
    },
    /// `ERROR`: the error type, verbatim (`NO-USER`, `HIDDEN-USER`,
    /// `INVALID-PORT`, `UNKNOWN-ERROR`, `X-...` or anything else).
    Error(Vec<u8>),
}

/// The identd did not speak RFC 1413. Also used by the reader in
/// `ident::query` for what goes wrong on the wire before a line is complete.
///
/// Messages quote offending bytes escaped (`\xNN`, `\n`, `\"`) and cut to a
/// few dozen bytes, so they are safe to log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    #[error("empty reply")]
    Empty,
    #[error("reply longer than {max} bytes")]
    TooLong { max: usize },
    #[error("connection closed after {len} bytes without an end of line")]
    Unterminated { len: usize },
    #[error("connection reset by the identd")]
    Reset,
    #[error("malformed port pair \"{0}\"")]
    BadPortPair(Excerpt),
    #[error(
        "port pair mismatch: asked {}, {}, answered {}, {}",
        asked.0, asked.1, answered.0, answered.1
    )]
    PortMismatch {
        asked: (u16, u16),
        answered: (u16, u16),
    },
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("unknown reply type \"{0}\"")]
    UnknownType(Excerpt),
    #[error("invalid {field} \"{value}\": {why}")]
    InvalidToken {
        field: &'static str,
        value: Excerpt,
        why: &'static str,
    },
    #[error("unexpected data after the error type \"{0}\"")]
    TrailingData(Excerpt),
    #[error("user-id contains the forbidden byte 0x{0:02x}")]
    ForbiddenByte(u8),
}

/// A short, escaped, printable rendering of untrusted bytes, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Excerpt(String);

impl Excerpt {
    pub fn new(bytes: &[u8]) -> Excerpt {
        let cut = &bytes[..bytes.len().min(EXCERPT)];
        let mut s = cut.escape_ascii().to_string();
        if cut.len() < bytes.len() {
            s.push_str("...");
        }
        Excerpt(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Excerpt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses one reply line to the query `client_port , remote_port`.
///
/// `line` is what came before the end of line (a trailing LF or CR LF is
/// ignored if present). See the module documentation for the grammar.
pub fn parse_reply(
    line: &[u8],
    client_port: u16,
    remote_port: u16,
) -> Result<IdentReply, ProtocolError> {
    let line = strip_eol(line);
    if trim(line).is_empty() {
        return Err(ProtocolError::Empty);
    }

    let (pair, rest) = split_once(line, b':');
    let answered =
        parse_port_pair(pair).ok_or_else(|| ProtocolError::BadPortPair(Excerpt::new(pair)))?;
    let asked = (client_port, remote_port);
    if answered != asked {
        return Err(ProtocolError::PortMismatch { asked, answered });
    }

    let rest = rest.ok_or(ProtocolError::Missing("reply type"))?;
    let (kind, rest) = split_once(rest, b':');
    let kind = trim(kind);
    if kind.eq_ignore_ascii_case(b"USERID") {
        parse_userid(rest.ok_or(ProtocolError::Missing("operating system"))?)
    } else if kind.eq_ignore_ascii_case(b"ERROR") {
        parse_error(rest.ok_or(ProtocolError::Missing("error type"))?)
    } else if kind.is_empty() {
        Err(ProtocolError::Missing("reply type"))
    } else {
        Err(ProtocolError::UnknownType(Excerpt::new(kind)))
    }
}

/// `opsys-field ":" user-id`, after `USERID :`.
fn parse_userid(rest: &[u8]) -> Result<IdentReply, ProtocolError> {
    let (field, user) = split_once(rest, b':');
    let (opsys, charset) = split_once(field, b',');
    let opsys = token(opsys, "operating system")?;
    let charset = match charset {
        Some(c) if c.contains(&b',') => {
            return Err(ProtocolError::InvalidToken {
                field: "charset",
                value: Excerpt::new(trim(c)),
                why: "a second comma in the operating system field",
            });
        }
        Some(c) => Some(token(c, "charset")?),
        None => None,
    };
    let user = user.ok_or(ProtocolError::Missing("user-id"))?;
    let user = trim_start(user);
    if let Some(&bad) = user.iter().find(|&&b| matches!(b, 0 | b'\r' | b'\n')) {
        return Err(ProtocolError::ForbiddenByte(bad));
    }
    if user.is_empty() {
        return Err(ProtocolError::Missing("user-id"));
    }
    Ok(IdentReply::User {
        opsys,
        charset,
        user: user.to_vec(),
    })
}

/// `error-type`, after `ERROR :`.
fn parse_error(rest: &[u8]) -> Result<IdentReply, ProtocolError> {
    let (kind, extra) = split_once(rest, b':');
    if let Some(extra) = extra {
        return Err(ProtocolError::TrailingData(Excerpt::new(extra)));
    }
    Ok(IdentReply::Error(token(kind, "error type")?))
}

/// One token: blanks around it trimmed, then 1 to 64 printable ASCII
/// characters other than `:` (the splitter already removed those).
fn token(raw: &[u8], field: &'static str) -> Result<Vec<u8>, ProtocolError> {
    let t = trim(raw);
    let invalid = |why| ProtocolError::InvalidToken {
        field,
        value: Excerpt::new(t),
        why,
    };
    if t.is_empty() {
        return Err(ProtocolError::Missing(field));
    }
    if t.len() > MAX_TOKEN {
        return Err(invalid("longer than 64 characters"));
    }
    if !t.iter().all(|&b| b.is_ascii_graphic() && b != b':') {
        return Err(invalid("not a token of printable ascii"));
    }
    Ok(t.to_vec())
}

/// `port , port` with blanks allowed around each number.
fn parse_port_pair(pair: &[u8]) -> Option<(u16, u16)> {
    let (a, b) = split_once(pair, b',');
    Some((port(a)?, port(b?)?))
}

fn port(raw: &[u8]) -> Option<u16> {
    let digits = trim(raw);
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    u16::try_from(n).ok()
}

/// Splits at the first `sep`: the part before, and the part after if `sep`
/// was there.
fn split_once(s: &[u8], sep: u8) -> (&[u8], Option<&[u8]>) {
    match s.iter().position(|&b| b == sep) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_start(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_blank(b)).unwrap_or(s.len());
    &s[start..]
}

fn trim(s: &[u8]) -> &[u8] {
    let s = trim_start(s);
    let end = s.iter().rposition(|&b| !is_blank(b)).map_or(0, |i| i + 1);
    &s[..end]
}

/// Removes one trailing LF or CR LF; a CR alone stays (and is refused).
fn strip_eol(line: &[u8]) -> &[u8] {
    match line.strip_suffix(b"\n") {
        Some(line) => line.strip_suffix(b"\r").unwrap_or(line),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(opsys: &[u8], charset: Option<&[u8]>, user: &[u8]) -> IdentReply {
        IdentReply::User {
            opsys: opsys.to_vec(),
            charset: charset.map(<[u8]>::to_vec),
            user: user.to_vec(),
        }
    }

    fn p(line: &[u8]) -> Result<IdentReply, ProtocolError> {
        parse_reply(line, 6193, 23)
    }

    fn err(line: &[u8]) -> String {
        match p(line) {
            Err(e) => e.to_string(),
            Ok(r) => panic!(
                "expected an error for {:?}, got {r:?}",
                line.escape_ascii().to_string()
            ),
        }
    }

    #[test]
    fn rfc_example_userid() {
        assert_eq!(
            p(b"6193, 23 : USERID : UNIX : stjohns"),
            Ok(user(b"UNIX", None, b"stjohns"))
        );
    }

    #[test]
    fn oidentd_compact_form() {
        assert_eq!(
            parse_reply(b"49480,8081:USERID:UNIX:bob", 49480, 8081),
            Ok(user(b"UNIX", None, b"bob"))
        );
    }

    #[test]
    fn charset_is_kept() {
        assert_eq!(
            p(b"6193,23:USERID:OTHER , UTF-8:j\xc3\xb6rg"),
            Ok(user(b"OTHER", Some(b"UTF-8"), b"j\xc3\xb6rg"))
        );
    }

    #[test]
    fn rfc_example_errors() {
        assert_eq!(
            p(b"6195, 23 : ERROR : NO-USER").unwrap_err(),
            ProtocolError::PortMismatch {
                asked: (6193, 23),
                answered: (6195, 23)
            }
        );
        for e in [
            &b"NO-USER"[..],
            b"HIDDEN-USER",
            b"INVALID-PORT",
            b"UNKNOWN-ERROR",
            b"X-NOT-TODAY",
            b"SOMETHING-ELSE",
        ] {
            let mut line = b"6193, 23 : ERROR : ".to_vec();
            line.extend_from_slice(e);
            assert_eq!(p(&line), Ok(IdentReply::Error(e.to_vec())));
        }
    }

    #[test]
    fn reply_types_ignore_case_other_tokens_verbatim() {
        assert_eq!(
            p(b"6193,23:userid:Unix:bob"),
            Ok(user(b"Unix", None, b"bob"))
        );
        assert_eq!(
            p(b"6193,23:Error:no-user"),
            Ok(IdentReply::Error(b"no-user".to_vec()))
        );
    }

    #[test]
    fn blanks_around_everything() {
        assert_eq!(
            p(b" \t6193 \t, \t23\t : \tUSERID \t:\t UNIX\t ,\tUS-ASCII \t: \t bob"),
            Ok(user(b"UNIX", Some(b"US-ASCII"), b"bob"))
        );
        assert_eq!(
            p(b"  6193 , 23 : ERROR :  NO-USER \t "),
            Ok(IdentReply::Error(b"NO-USER".to_vec()))
        );
    }

    #[test]
    fn user_keeps_inner_and_trailing_bytes() {
        assert_eq!(
            p(b"6193,23:USERID:UNIX: a b : c ,d  "),
            Ok(user(b"UNIX", None, b"a b : c ,d  "))
        );
    }

    #[test]
    fn trailing_eol_is_ignored() {
        assert_eq!(
            p(b"6193,23:USERID:UNIX:bob\r\n"),
            Ok(user(b"UNIX", None, b"bob"))
        );
        assert_eq!(
            p(b"6193,23:USERID:UNIX:bob\n"),
            Ok(user(b"UNIX", None, b"bob"))
        );
        assert_eq!(
            err(b"6193,23:USERID:UNIX:bob\r"),
            "user-id contains the forbidden byte 0x0d"
        );
    }

    #[test]
    fn empty_and_blank_lines() {
        for line in [&b""[..], b"   ", b"\t", b"\r\n", b"\n", b" \r\n"] {
            assert_eq!(p(line), Err(ProtocolError::Empty), "{line:?}");
        }
    }

    #[test]
    fn port_pair_errors() {
        assert_eq!(err(b"6193:USERID:UNIX:bob"), "malformed port pair \"6193\"");
        assert_eq!(
            err(b"6193,:USERID:UNIX:bob"),
            "malformed port pair \"6193,\""
        );
        assert_eq!(err(b",23:USERID:UNIX:bob"), "malformed port pair \",23\"");
        assert_eq!(
            err(b"6193,23,1:USERID:UNIX:bob"),
            "malformed port pair \"6193,23,1\""
        );
        assert_eq!(
            err(b"6193,65536:ERROR:NO-USER"),
            "malformed port pair \"6193,65536\""
        );
        assert_eq!(
            err(b"006193,23:ERROR:NO-USER"),
            "malformed port pair \"006193,23\""
        );
        assert_eq!(
            err(b"+6193,23:ERROR:NO-USER"),
            "malformed port pair \"+6193,23\""
        );
        assert_eq!(
            err(b"61 93,23:ERROR:NO-USER"),
            "malformed port pair \"61 93,23\""
        );
        assert_eq!(err(b"USERID:UNIX:bob"), "malformed port pair \"USERID\"");
        // leading zeros within five digits are still the number
        assert_eq!(
            p(b"06193,00023:ERROR:NO-USER"),
            Ok(IdentReply::Error(b"NO-USER".to_vec()))
        );
    }

    #[test]
    fn port_pair_must_echo_the_query() {
        assert_eq!(
            err(b"23,6193:USERID:UNIX:bob"),
            "port pair mismatch: asked 6193, 23, answered 23, 6193"
        );
        assert_eq!(
            parse_reply(b"0,0:ERROR:NO-USER", 0, 0),
            Ok(IdentReply::Error(b"NO-USER".to_vec()))
        );
        assert_eq!(
            parse_reply(b"65535,65535:ERROR:NO-USER", 65535, 65535),
            Ok(IdentReply::Error(b"NO-USER".to_vec()))
        );
    }

    #[test]
    fn missing_fields() {
        assert_eq!(err(b"6193,23"), "missing reply type");
        assert_eq!(err(b"6193,23:"), "missing reply type");
        assert_eq!(err(b"6193,23: :x"), "missing reply type");
        assert_eq!(err(b"6193,23:USERID"), "missing operating system");
        assert_eq!(err(b"6193,23:USERID:bob"), "missing user-id");
        assert_eq!(err(b"6193,23:USERID::bob"), "missing operating system");
        assert_eq!(err(b"6193,23:USERID:UNIX:"), "missing user-id");
        assert_eq!(err(b"6193,23:USERID:UNIX: \t "), "missing user-id");
        assert_eq!(err(b"6193,23:USERID:UNIX,:bob"), "missing charset");
        assert_eq!(err(b"6193,23:ERROR"), "missing error type");
        assert_eq!(err(b"6193,23:ERROR:"), "missing error type");
        assert_eq!(err(b"6193,23:ERROR:  "), "missing error type");
    }

    #[test]
    fn unknown_reply_type() {
        assert_eq!(err(b"6193,23:USER:UNIX:bob"), "unknown reply type \"USER\"");
        assert_eq!(
            err(b"6193,23:\"USERID\":UNIX:bob"),
            "unknown reply type \"\\\"USERID\\\"\""
        );
    }

    #[test]
    fn invalid_tokens() {
        assert_eq!(
            err(b"6193,23:USERID:UN IX:bob"),
            "invalid operating system \"UN IX\": not a token of printable ascii"
        );
        assert_eq!(
            err(b"6193,23:USERID:UNIX,US ASCII:bob"),
            "invalid charset \"US ASCII\": not a token of printable ascii"
        );
        assert_eq!(
            err(b"6193,23:USERID:UNIX,a,b:bob"),
            "invalid charset \"a,b\": a second comma in the operating system field"
        );
        assert_eq!(
            err(b"6193,23:USERID:UN\x00IX:bob"),
            "invalid operating system \"UN\\x00IX\": not a token of printable ascii"
        );
        assert_eq!(
            err(b"6193,23:ERROR:NO\xffUSER"),
            "invalid error type \"NO\\xffUSER\": not a token of printable ascii"
        );
        let long = [b'X'; 65];
        let mut line = b"6193,23:ERROR:".to_vec();
        line.extend_from_slice(&long);
        assert_eq!(
            err(&line),
            format!(
                "invalid error type \"{}...\": longer than 64 characters",
                "X".repeat(32)
            )
        );
        let mut line = b"6193,23:ERROR:".to_vec();
        line.extend_from_slice(&long[..64]);
        assert_eq!(p(&line), Ok(IdentReply::Error(long[..64].to_vec())));
    }

    /// Another server on port 113 (a web server, sshd, an MTA) answers with
    /// its own greeting: a protocol error that quotes it, never a user.
    #[test]
    fn other_protocols_on_port_113_are_protocol_errors() {
        assert_eq!(
            err(b"HTTP/1.1 400 Bad Request\r\n"),
            "malformed port pair \"HTTP/1.1 400 Bad Request\""
        );
        assert_eq!(
            err(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"),
            "malformed port pair \"SSH-2.0-OpenSSH_9.2p1 Debian-2+d...\""
        );
        assert_eq!(
            err(b"220 mail.example.org ESMTP Postfix\r\n"),
            "malformed port pair \"220 mail.example.org ESMTP Postf...\""
        );
        assert_eq!(
            err(b"<html><head><title>400</title></head>"),
            "malformed port pair \"<html><head><title>400</title></...\""
        );
    }

    #[test]
    fn an_operating_system_token_over_64_characters_is_refused() {
        let mut line = b"6193,23:USERID:".to_vec();
        line.extend_from_slice(&[b'U'; 65]);
        line.extend_from_slice(b":bob");
        assert_eq!(
            err(&line),
            format!(
                "invalid operating system \"{}...\": longer than 64 characters",
                "U".repeat(32)
            )
        );
    }

    #[test]
    fn error_with_trailing_data() {
        assert_eq!(
            err(b"6193,23:ERROR:NO-USER:but bob"),
            "unexpected data after the error type \"but bob\""
        );
    }

    #[test]
    fn commas_allowed_in_error_type_and_charset_is_one_token() {
        assert_eq!(
            p(b"6193,23:ERROR:X-A,B"),
            Ok(IdentReply::Error(b"X-A,B".to_vec()))
        );
    }

    #[test]
    fn hostile_users() {
        // newlines, CR and NUL inside the user-id are refused
        assert_eq!(
            err(b"6193,23:USERID:UNIX:bo\nb"),
            "user-id contains the forbidden byte 0x0a"
        );
        assert_eq!(
            err(b"6193,23:USERID:UNIX:bo\rb"),
            "user-id contains the forbidden byte 0x0d"
        );
        assert_eq!(
            err(b"6193,23:USERID:UNIX:bo\0b"),
            "user-id contains the forbidden byte 0x00"
        );
        assert_eq!(
            err(b"6193,23:USERID:UNIX:bob\n\n"),
            "user-id contains the forbidden byte 0x0a"
        );
        // everything else is opaque and kept exactly
        for u in [
            &b"\x01\x07\x1b[31mred\x1b[0m\x7f"[..],
            b"\"quoted\" user='x'",
            b"a=b c=\"d\"",
            b"\xff\xfe\xc3(",
            b"%s%n%x",
            b"<script>",
            b"ro\\ot",
            b"\xe2\x80\xae\xe2\x80\x8b",
        ] {
            let mut line = b"6193,23:USERID:UNIX:".to_vec();
            line.extend_from_slice(u);
            assert_eq!(
                p(&line),
                Ok(user(b"UNIX", None, u)),
                "{:?}",
                u.escape_ascii().to_string()
            );
        }
    }

    #[test]
    fn thousand_byte_user() {
        let u = vec![b'u'; 1000];
        let mut line = b"6193,23:USERID:UNIX:".to_vec();
        line.extend_from_slice(&u);
        assert_eq!(p(&line), Ok(user(b"UNIX", None, &u)));
    }

    #[test]
    fn messages_are_escaped_and_short() {
        let mut line = b"6193,23:".to_vec();
        line.extend_from_slice(&[b'\n'; 100]);
        line.extend_from_slice(b":x");
        let m = err(&line);
        assert!(m.starts_with("unknown reply type \"\\n\\n"), "{m}");
        assert!(m.ends_with("...\""), "{m}");
        assert!(m.bytes().all(|b| b.is_ascii_graphic() || b == b' '), "{m}");
        assert!(m.len() < 150, "{m}");
    }

    /// Random lines, half of them built from the grammar's own pieces so that
    /// the deep branches are reached, must never panic, and what is accepted
    /// must hold the parser's promises.
    #[test]
    fn random_bytes_never_panic() {
        const PIECES: &[&[u8]] = &[
            b"6193",
            b"23",
            b",",
            b":",
            b" ",
            b"\t",
            b"USERID",
            b"ERROR",
            b"UNIX",
            b"OTHER",
            b"US-ASCII",
            b"NO-USER",
            b"\r",
            b"\n",
            b"\0",
            b"\xff",
            b"65536",
            b"bob",
        ];
        let mut rng = crate::format::testutil::Rng::new(0x9e37_79b9_7f4a_7c15);
        for round in 0..200_000u32 {
            let len = (rng.below(80)) as usize;
            let mut line = Vec::with_capacity(len);
            if round % 2 == 0 {
                for _ in 0..len {
                    line.push(rng.byte());
                }
            } else {
                line.extend_from_slice(b"6193,23:");
                for _ in 0..len / 4 {
                    let piece = PIECES[rng.below(PIECES.len() as u64) as usize];
                    line.extend_from_slice(piece);
                }
            }
            match parse_reply(&line, 6193, 23) {
                Ok(IdentReply::User {
                    opsys,
                    charset,
                    user,
                }) => {
                    assert!(!opsys.is_empty() && opsys.len() <= MAX_TOKEN);
                    assert!(charset.is_none_or(|c| !c.is_empty() && c.len() <= MAX_TOKEN));
                    assert!(!user.is_empty());
                    assert!(!user.iter().any(|b| matches!(b, 0 | b'\r' | b'\n')));
                }
                Ok(IdentReply::Error(e)) => {
                    assert!(!e.is_empty() && e.len() <= MAX_TOKEN);
                }
                Err(e) => {
                    let m = e.to_string();
                    assert!(m.is_ascii() && !m.contains('\n'), "{m}");
                }
            }
        }
    }
}
