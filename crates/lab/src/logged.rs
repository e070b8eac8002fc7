//! masqlog's lines as they arrived at a lab receiver, read back with the
//! crate's own parser and matched to the lab's flows.

use masqlog_core::format::chain::parse_chain;
use masqlog_core::format::{ParseError, ParsedLine, parse_line};
use masqlog_core::record::Event;

use crate::flow::FlowSpec;

/// One masqlog line from a receiver's file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// The line as the receiver wrote it.
    pub line: String,
    pub parsed: ParsedLine,
}

/// What a receiver's file holds: masqlog lines, and lines that look like
/// masqlog's but do not parse (a bug somewhere). Other lines (the
/// receiver's own) are left out.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub lines: Vec<Logged>,
    pub unreadable: Vec<(String, ParseError)>,
    /// Chain-start and chain-stop records (sealing).
    pub chain: Vec<String>,
}

/// Reads every line with [`parse_line`].
pub fn read(lines: &[String]) -> Received {
    let mut r = Received::default();
    for l in lines {
        match parse_line(l) {
            Ok(parsed) => r.lines.push(Logged {
                line: l.clone(),
                parsed,
            }),
            Err(ParseError::NotFound { .. }) => {}
            // The chain records of a sealing writer are no flow lines.
            Err(_) if parse_chain(l).is_some() => r.chain.push(l.clone()),
            Err(e) => r.unreadable.push((l.clone(), e)),
        }
    }
    r
}

impl Received {
    /// The lines of one flow (client address and port, protocol), in the
    /// order they arrived.
    pub fn of_flow(&self, spec: &FlowSpec) -> Vec<&Logged> {
        let client = spec.client();
        self.lines
            .iter()
            .filter(|l| {
                l.parsed.record.client.ip == client.ip()
                    && l.parsed.record.client.port == Some(client.port())
                    && l.parsed.record.proto.name() == Some(spec.proto.name())
            })
            .collect()
    }

    /// Whether a flow has at least one line of `event`.
    pub fn has(&self, spec: &FlowSpec, event: Event) -> bool {
        self.of_flow(spec)
            .iter()
            .any(|l| l.parsed.record.event == event)
    }
}
