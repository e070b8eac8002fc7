//! Gap records: the log's own statement that conntrack events were lost
//! (ulogd's netlink socket overflowed), so that an investigator who finds
//! no line for a flow knows whether that period is complete.
//!
//! The three forms, beside the flow lines of the same format:
//! - text: `masqlog/1 ev=gap from=T to=T lost=N source=netlink`
//! - RFC 5424: MSGID `gap`, `[masqlog@32473 masqlog="1" ev="gap" from="T"
//!   to="T" lost="N" source="netlink"]`
//! - JSON: `{"masqlog":1,"ev":"gap","from":"T","to":"T","lost":N,"source":"netlink"}`
//!
//! T is RFC 3339 UTC with microseconds. The events were lost at some time
//! between `from` (the previous check, when none were missing) and `to`
//! (the check that found them missing).

use super::Header;
use super::event::{self, Val, value};
use crate::config::Format;
use crate::record::Timestamp;
use crate::time;

/// A period in which conntrack events were lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    pub from: Timestamp,
    pub to: Timestamp,
    /// Events lost (the socket's drop counter grew by this much).
    pub lost: u64,
}

/// What `source` says: the drop counter of the NETLINK_NETFILTER socket.
const SOURCE: &str = "netlink";

/// Appends one complete syslog message for `gap`; returns where its body
/// (the format's marker) starts, as [`super::write_syslog`] does.
pub fn write_syslog(format: Format, hdr: &Header<'_>, gap: &Gap, out: &mut Vec<u8>) -> usize {
    let fields = [
        ("from", Val::Time(gap.from)),
        ("to", Val::Time(gap.to)),
        ("lost", Val::Num(gap.lost)),
        ("source", Val::Word(SOURCE)),
    ];
    event::write_syslog(format, hdr, "gap", &fields, out)
}

/// Reads a gap record in any of the three forms; `None` for any other
/// line (flow lines included).
pub fn parse_gap(line: &str) -> Option<Gap> {
    if !event::is_event(line, "gap") {
        return None;
    }
    let from = time::parse_rfc3339(value(line, "from")?)?;
    let to = time::parse_rfc3339(value(line, "to")?)?;
    let lost = value(line, "lost")?.parse().ok()?;
    (from.as_micros() <= to.as_micros()).then_some(Gap { from, to, lost })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{parse_line, testutil::header};

    fn gap() -> Gap {
        Gap {
            from: Timestamp::new(1_795_475_490, 235_961),
            to: Timestamp::new(1_795_475_491, 7),
            lost: 1744,
        }
    }

    #[test]
    fn every_form_reads_back_and_is_no_flow_line() {
        for format in [Format::Text, Format::Json, Format::Rfc5424] {
            let mut out = Vec::new();
            write_syslog(format, &header(Some("gw1")), &gap(), &mut out);
            let line = String::from_utf8(out).unwrap();
            assert_eq!(parse_gap(&line), Some(gap()), "{line}");
            assert!(parse_line(&line).is_err(), "{line}");
            assert!(line.contains("lost"), "{line}");
        }
        let mut out = Vec::new();
        write_syslog(Format::Text, &header(None), &gap(), &mut out);
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.ends_with(
                "masqlog/1 ev=gap from=2026-11-23T23:11:30.235961Z to=2026-11-23T23:11:31.000007Z lost=1744 source=netlink"
            ),
            "{line}"
        );
    }

    #[test]
    fn json_and_rfc5424_bodies_are_exact() {
        let t = "\"from\":\"2026-11-23T23:11:30.235961Z\",\"to\":\"2026-11-23T23:11:31.000007Z\"";
        for (format, want) in [
            (
                Format::Json,
                format!("{{\"masqlog\":1,\"ev\":\"gap\",{t},\"lost\":1744,\"source\":\"netlink\"}}"),
            ),
            (
                Format::Rfc5424,
                " gap [masqlog@32473 masqlog=\"1\" ev=\"gap\" from=\"2026-11-23T23:11:30.235961Z\" to=\"2026-11-23T23:11:31.000007Z\" lost=\"1744\" source=\"netlink\"]".to_string(),
            ),
        ] {
            let mut out = Vec::new();
            write_syslog(format, &header(Some("gw1")), &gap(), &mut out);
            let line = String::from_utf8(out).unwrap();
            assert!(line.ends_with(&want), "{line}");
        }
    }

    #[test]
    fn flow_lines_and_broken_gaps_are_not_gaps() {
        assert_eq!(parse_gap("masqlog/1 ev=start nat=snat proto=tcp"), None);
        assert_eq!(
            parse_gap("masqlog/1 ev=gap from=2026-11-23T20:31:30Z to=x lost=1"),
            None
        );
        assert_eq!(
            parse_gap("masqlog/1 ev=gap from=2026-11-23T20:31:31Z to=2026-11-23T20:31:30Z lost=1"),
            None,
            "to before from"
        );
    }
}
