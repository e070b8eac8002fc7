//! Chain records: a sealing writer's own statements of where its chain
//! starts and stops, so that a restart, a crash or a lost tail shows in the
//! log instead of passing for a quiet spell.
//!
//! - `ev=chain-start`, the first record of every run (seq 1): the previous
//!   run as the writer's chain mark knew it: `prev_run`, `prev_seq`,
//!   `prev_mac` and `prev_end` (`clean`: that run stopped and wrote its
//!   chain-stop record; `checkpoint`: it did not stop cleanly, and the mark
//!   is the last one it saved, so records after `prev_seq` may exist or be
//!   lost; `none`: no earlier run is known).
//! - `ev=chain-stop`, the last record of a run that stopped cleanly.
//!
//! Both are sealed like every record (see [`super::sealing`]).

use super::Header;
use super::event::{self, Val, value};
use crate::config::Format;
use crate::seal::{ChainMark, MAC_LEN, MacBytes, hex_string, parse_hex_into};

/// A chain record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainRecord {
    /// A run begins, after the run its chain mark names (if any).
    Start { previous: Option<Previous> },
    /// The run ends here, cleanly.
    Stop,
}

/// What a new run knows of the run before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Previous {
    pub run: u64,
    pub seq: u64,
    pub mac: MacBytes,
    /// Whether that run stopped cleanly (else: its last checkpoint).
    pub clean: bool,
}

impl From<&ChainMark> for Previous {
    fn from(m: &ChainMark) -> Previous {
        Previous {
            run: m.run,
            seq: m.seq,
            mac: m.mac,
            clean: m.clean,
        }
    }
}

const START: &str = "chain-start";
const STOP: &str = "chain-stop";

/// Appends one complete syslog message for `rec`; returns where its body
/// starts (to be sealed).
pub fn write_syslog(
    format: Format,
    hdr: &Header<'_>,
    rec: &ChainRecord,
    out: &mut Vec<u8>,
) -> usize {
    match rec {
        ChainRecord::Start { previous: None } => {
            event::write_syslog(format, hdr, START, &[("prev_end", Val::Word("none"))], out)
        }
        ChainRecord::Start { previous: Some(p) } => {
            let mac = hex_string(&p.mac);
            let fields = [
                ("prev_run", Val::Num(p.run)),
                ("prev_seq", Val::Num(p.seq)),
                ("prev_mac", Val::Word(&mac)),
                (
                    "prev_end",
                    Val::Word(if p.clean { "clean" } else { "checkpoint" }),
                ),
            ];
            event::write_syslog(format, hdr, START, &fields, out)
        }
        ChainRecord::Stop => event::write_syslog(format, hdr, STOP, &[], out),
    }
}

/// Reads a chain record in any of the three forms; `None` for any other
/// line.
pub fn parse_chain(line: &str) -> Option<ChainRecord> {
    if event::is_event(line, STOP) {
        return Some(ChainRecord::Stop);
    }
    if !event::is_event(line, START) {
        return None;
    }
    let clean = match value(line, "prev_end")? {
        "none" => return Some(ChainRecord::Start { previous: None }),
        "clean" => true,
        "checkpoint" => false,
        _ => return None,
    };
    let mut mac = [0u8; MAC_LEN];
    if !parse_hex_into(value(line, "prev_mac")?, &mut mac) {
        return None;
    }
    Some(ChainRecord::Start {
        previous: Some(Previous {
            run: value(line, "prev_run")?.parse().ok()?,
            seq: value(line, "prev_seq")?.parse().ok()?,
            mac,
            clean,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{parse_line, testutil::header};

    #[test]
    fn every_form_reads_back_and_is_no_flow_line() {
        let recs = [
            ChainRecord::Start { previous: None },
            ChainRecord::Start {
                previous: Some(Previous {
                    run: 3,
                    seq: 1042,
                    mac: [0xab; MAC_LEN],
                    clean: false,
                }),
            },
            ChainRecord::Stop,
        ];
        for format in [Format::Text, Format::Json, Format::Rfc5424] {
            for rec in &recs {
                let mut out = Vec::new();
                write_syslog(format, &header(Some("gw1")), rec, &mut out);
                let line = String::from_utf8(out).unwrap();
                assert_eq!(parse_chain(&line).as_ref(), Some(rec), "{line}");
                assert!(parse_line(&line).is_err(), "{line}");
                assert_eq!(crate::format::gap::parse_gap(&line), None, "{line}");
            }
        }
        let mut out = Vec::new();
        write_syslog(Format::Text, &header(None), &recs[1], &mut out);
        assert!(String::from_utf8(out).unwrap().ends_with(&format!(
            "masqlog/1 ev=chain-start prev_run=3 prev_seq=1042 prev_mac={} prev_end=checkpoint",
            "ab".repeat(16)
        )));
    }

    #[test]
    fn other_lines_are_not_chain_records() {
        assert_eq!(parse_chain("masqlog/1 ev=start nat=snat"), None);
        assert_eq!(parse_chain("masqlog/1 ev=chain-startle"), None);
        assert_eq!(parse_chain("masqlog/1 ev=chain-start prev_end=maybe"), None);
    }
}
