//! Many reports at once (`--reports FILE`): CSV with a header line
//! (`public,time[,remote][,proto]`; `at` may stand for `time`; quotes as in
//! RFC 4180 for times with commas) or JSON lines
//! (`{"public":"192.0.2.1:53500","at":"...","remote":...,"proto":...}`),
//! told apart by the first character. Empty lines and lines starting with
//! `#` are skipped. Each line's problems are its own: the others are still
//! answered.

/// One report as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportLine {
    /// 1-based line number in the reports file.
    pub line: usize,
    pub public: String,
    pub at: String,
    pub remote: Option<String>,
    pub proto: Option<String>,
}

/// A report line that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadReport {
    pub line: usize,
    pub why: String,
}

/// Splits one CSV record (RFC 4180 quoting, on one line).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cur.push('"');
                }
                '"' => quoted = false,
                _ => cur.push(c),
            }
            continue;
        }
        match c {
            '"' if cur.trim().is_empty() && !was_quoted => {
                cur.clear();
                quoted = true;
                was_quoted = true;
            }
            ',' => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                was_quoted = false;
            }
            _ if was_quoted && !c.is_whitespace() => {
                return Err("text after a closing quote".into());
            }
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote (a field cannot span lines)".into());
    }
    out.push(cur.trim().to_string());
    Ok(out)
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Reads a reports file: the reports, and the lines that could not be
/// read. An error for the file as a whole (no header, unknown columns).
pub fn read_reports(text: &str) -> Result<(Vec<ReportLine>, Vec<BadReport>), String> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let mut reports = Vec::new();
    let mut bad = Vec::new();
    let Some((first_no, first)) = lines.next() else {
        return Ok((reports, bad));
    };
    if first.trim_start().starts_with('{') {
        for (no, l) in std::iter::once((first_no, first)).chain(lines) {
            match super::json::parse_flat(l.trim()) {
                Err(why) => bad.push(BadReport { line: no, why }),
                Ok(members) => {
                    let get = |k: &str| {
                        members
                            .iter()
                            .find(|(name, _)| name == k)
                            .and_then(|(_, v)| v.clone())
                    };
                    let public = get("public");
                    let at = get("at").or_else(|| get("time"));
                    match (public, at) {
                        (Some(public), Some(at)) => reports.push(ReportLine {
                            line: no,
                            public,
                            at,
                            remote: nonempty(get("remote")),
                            proto: nonempty(get("proto")),
                        }),
                        _ => bad.push(BadReport {
                            line: no,
                            why: "needs \"public\" and \"at\"".into(),
                        }),
                    }
                }
            }
        }
        return Ok((reports, bad));
    }
    let header = csv_fields(first).map_err(|e| format!("line {first_no}: {e}"))?;
    let col = |names: &[&str]| {
        header
            .iter()
            .position(|h| names.iter().any(|n| h.eq_ignore_ascii_case(n)))
    };
    let (Some(c_public), Some(c_at)) = (col(&["public"]), col(&["time", "at"])) else {
        return Err(format!(
            "line {first_no}: the CSV header must name the columns `public` and `time` \
             (and may name `remote` and `proto`), e.g. `public,time,remote,proto`"
        ));
    };
    let c_remote = col(&["remote"]);
    let c_proto = col(&["proto"]);
    if let Some(unknown) = header.iter().find(|h| {
        !["public", "time", "at", "remote", "proto"]
            .iter()
            .any(|n| h.eq_ignore_ascii_case(n))
    }) {
        return Err(format!("line {first_no}: unknown CSV column {unknown:?}"));
    }
    for (no, l) in lines {
        match csv_fields(l) {
            Err(why) => bad.push(BadReport { line: no, why }),
            Ok(f) if f.len() > header.len() => bad.push(BadReport {
                line: no,
                why: format!(
                    "{} fields for {} columns (quote a time that has commas)",
                    f.len(),
                    header.len()
                ),
            }),
            Ok(f) => {
                let get = |c: Option<usize>| c.and_then(|c| f.get(c).cloned());
                match (nonempty(get(Some(c_public))), nonempty(get(Some(c_at)))) {
                    (Some(public), Some(at)) => reports.push(ReportLine {
                        line: no,
                        public,
                        at,
                        remote: nonempty(get(c_remote)),
                        proto: nonempty(get(c_proto)),
                    }),
                    _ => bad.push(BadReport {
                        line: no,
                        why: "needs a public endpoint and a time".into(),
                    }),
                }
            }
        }
    }
    Ok((reports, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_header_and_quotes() {
        let text = "public,time,remote,proto\n\
                    192.0.2.1:53500,2026-11-21 13:37:42 CET,203.0.113.7:443,tcp\n\
                    \n# a comment\n\
                    \"192.0.2.1:53501\",\"Sat, 21 Nov 2026 13:37:42 +0100\",,\n\
                    192.0.2.1:53502,2026-11-21T12:00:00Z\n\
                    192.0.2.1:1,a,b,c,d\n\
                    ,2026-11-21T12:00:00Z\n\
                    \"open,x\n";
        let (r, bad) = read_reports(text).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0],
            ReportLine {
                line: 2,
                public: "192.0.2.1:53500".into(),
                at: "2026-11-21 13:37:42 CET".into(),
                remote: Some("203.0.113.7:443".into()),
                proto: Some("tcp".into()),
            }
        );
        assert_eq!(r[1].at, "Sat, 21 Nov 2026 13:37:42 +0100");
        assert_eq!(r[1].remote, None);
        assert_eq!(r[2].line, 6);
        assert_eq!(
            bad.iter().map(|b| b.line).collect::<Vec<_>>(),
            vec![7, 8, 9]
        );
        // Column order is free; `at` for `time`.
        let (r, _) = read_reports("at,public\n2026-11-21T12:00:00Z,192.0.2.1:1\n").unwrap();
        assert_eq!(r[0].public, "192.0.2.1:1");
        assert!(read_reports("ip,when\n1,2\n").is_err());
        assert!(read_reports("public,time,colour\n").is_err());
    }

    #[test]
    fn json_lines() {
        let text = r#"{"public":"192.0.2.1:53500","at":"2026-11-21 13:37:42 CET","remote":"203.0.113.7:443"}
{"public":"[2001:db8::1]:53500","time":"@1795264662","proto":"udp","remote":null}
{"public":"192.0.2.1:1"}
not json
"#;
        let (r, bad) = read_reports(text).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].remote.as_deref(), Some("203.0.113.7:443"));
        assert_eq!(r[1].proto.as_deref(), Some("udp"));
        assert_eq!(r[1].remote, None);
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), vec![3, 4]);
    }
}
