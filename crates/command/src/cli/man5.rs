//! The ulogd_output_MASQLOG(5) manual page: the config keys straight from
//! `CONF_KEYS` (names, kinds, defaults, help), the NFCT settings that go
//! with them, and the line format with examples written by the formatter
//! itself, so the page cannot drift from the code.

use masqlog_core::config::Format;
use masqlog_core::format::{FORMAT_VERSION, Header, write_syslog};
use masqlog_core::keys::{CONF_KEYS, ConfKind};
use masqlog_core::record::{
    Event, FlowRecord, IdentInfo, IdentStatus, NatFilter, RawConntrack, Timestamp,
};

/// Escapes text for roff: backslashes, hyphens (so that copied options
/// work), and a leading `.` or `'` that would read as a request.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '.' | '\'' if i == 0 => {
                out.push_str("\\&");
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Literal lines (`.nf` ... `.fi`), each escaped.
fn literal(out: &mut String, lines: &str) {
    out.push_str(".PP\n.RS 4\n.nf\n");
    for l in lines.lines() {
        out.push_str(&esc(l));
        out.push('\n');
    }
    out.push_str(".fi\n.RE\n");
}

fn para(out: &mut String, text: &str) {
    out.push_str(".PP\n");
    out.push_str(&esc(text));
    out.push('\n');
}

fn tagged(out: &mut String, tag: &str, text: &str) {
    out.push_str(&format!(".TP\n{tag}\n{}\n", esc(text)));
}

/// The fields of format version 1, in line order: (name, meaning).
pub const FIELDS: &[(&str, &str)] = &[
    (
        "ev",
        "start (NEW), end (DESTROY), update, or ident (the IDENT answer for a flow)",
    ),
    (
        "nat",
        "snat (masquerade: the client is the inside source) or dnat (port forward: the client is the inside server)",
    ),
    (
        "proto",
        "tcp, udp, udplite, sctp, dccp, icmp, icmpv6 or the protocol number",
    ),
    ("icmp_type", "ICMP only: the type of the first packet"),
    ("icmp_code", "ICMP only: the code of the first packet"),
    ("id", "the conntrack id: the same in every line of one flow"),
    (
        "client",
        "the inside host, ip:port ([ipv6]:port; no port for ICMP)",
    ),
    ("masq", "the public endpoint the remote host saw"),
    ("remote", "the outside host"),
    (
        "remote_hash",
        "with remote=hash, instead of remote: a keyed hash of the outside host",
    ),
    (
        "start",
        "UTC, RFC 3339 with microseconds; in start lines the time ulogd read the event",
    ),
    ("end", "UTC, RFC 3339 with microseconds (end lines)"),
    ("out_pkts", "packets client to remote (end lines)"),
    ("out_bytes", "bytes client to remote (end lines)"),
    ("in_pkts", "packets remote to client (end lines)"),
    ("in_bytes", "bytes remote to client (end lines)"),
    (
        "ident",
        "the IDENT outcome: user, ident-error, timeout, refused, unreachable, protocol-error, queue-full or busy",
    ),
    (
        "user",
        "ident=user: the user name the identd sent (escaped: a hostile identd controls it)",
    ),
    ("opsys", "ident=user: the operating system the identd sent"),
    (
        "ident_detail",
        "ident-error and protocol-error: the identd's error token or the reason",
    ),
];

/// A masqueraded IPv4 TCP flow from 10.99.0.2:40000 to 203.0.113.7:443
/// behind 192.0.2.1:53500, as NFCT reports it: the start, the IDENT answer
/// and the end.
pub fn example_records() -> Vec<FlowRecord> {
    let ip = |s: &str| Some(s.parse().expect("an example address"));
    let raw = RawConntrack {
        orig_src: ip("10.99.0.2"),
        orig_dst: ip("203.0.113.7"),
        reply_src: ip("203.0.113.7"),
        reply_dst: ip("192.0.2.1"),
        protocol: Some(6),
        orig_sport: Some(40000),
        orig_dport: Some(443),
        reply_sport: Some(443),
        reply_dport: Some(53500),
        orig_bytes: Some(400),
        orig_packets: Some(5),
        reply_bytes: Some(3000),
        reply_packets: Some(4),
        ct_id: Some(3954),
        ..RawConntrack::default()
    };
    let start_t = Timestamp::new(1_795_264_662, 123_456);
    let start = RawConntrack {
        ct_event: Some(1),
        start: Some(start_t),
        ..raw.clone()
    };
    let end = RawConntrack {
        ct_event: Some(4),
        start: Some(start_t),
        end: Some(Timestamp::new(1_795_264_692, 654_321)),
        ..raw
    };
    let rec = |r: &RawConntrack| {
        FlowRecord::from_conntrack(r, NatFilter::Snat).expect("the example is masqueraded")
    };
    let mut ident = rec(&start);
    ident.event = Event::Ident;
    ident.ident = Some(IdentInfo {
        status: IdentStatus::User,
        user: Some(b"alice".to_vec()),
        opsys: Some(b"UNIX".to_vec()),
        detail: None,
    });
    vec![rec(&start), ident, rec(&end)]
}

/// The example messages in `format`, as the plugin sends them to the local
/// socket (text, json) or a remote receiver (rfc5424).
pub fn example_lines(format: Format) -> Vec<String> {
    let hostname = (format == Format::Rfc5424).then_some("gw1");
    example_records()
        .iter()
        .map(|r| {
            let hdr = Header {
                pri: 30,
                timestamp: r.end.or(r.start).expect("example times"),
                hostname,
                app: "masqlog",
                pid: 4242,
            };
            let mut out = Vec::new();
            write_syslog(format, &hdr, r, &mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
        .collect()
}

/// The page, in roff.
pub fn render(version: &str) -> String {
    let mut m = String::new();
    m.push_str(&format!(
        ".TH ULOGD_OUTPUT_MASQLOG 5 \"\" \"masqlog {}\" \"masqlog\"\n",
        esc(version)
    ));
    m.push_str(
        ".SH NAME\nulogd_output_MASQLOG \\- ulogd2 output plugin that logs NAT flows to syslog\n",
    );
    m.push_str(".SH SYNOPSIS\n");
    literal(
        &mut m,
        "[global]\n\
         plugin=\"/usr/lib/x86_64-linux-gnu/ulogd/ulogd_inpflow_NFCT.so\"\n\
         plugin=\"/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_MASQLOG.so\"\n\
         stack=ct1:NFCT,masq1:MASQLOG\n\n\
         [ct1]\nhash_enable=0\nevent_mask=0x00000005\n\
         netlink_socket_buffer_size=8388608\nnetlink_socket_buffer_maxsize=16777216\nreliable=1\n\n\
         [masq1]\nformat=text\ndestination=unix:/dev/log",
    );
    m.push_str(".SH DESCRIPTION\n");
    para(
        &mut m,
        "MASQLOG is an output plugin for ulogd2 (2.0.5 to 2.0.9). It receives conntrack events from ulogd's NFCT input, keeps the translated flows, and logs for each flow one line when it starts and one when it ends: the client, masquerade and remote endpoints, the protocol, the conntrack id, start and end time (UTC, microseconds) and packets and bytes each way. The lines go to syslog: the local socket, or a remote receiver over UDP or TCP. With IDENT lookups on, each new masqueraded TCP flow also gets the name of the user behind it from the client's identd.",
    );
    para(
        &mut m,
        "ulogd's own log gets one line when an instance starts, its statistics every stats_interval seconds and on SIGUSR1, and every delivery problem (destination down, records dropped).",
    );
    m.push_str(".SH CONFIGURATION KEYS\n");
    para(
        &mut m,
        "The keys of a [ID] section of a MASQLOG instance, as ulogd -i lists them. A bad value stops ulogd at start with a message naming the key, the value and what is allowed. ulogd 2.0.8 ignores unknown keys silently and reads integers with strtoul (\"abc\" is 0, \"010\" is 8), and a key written without a value (key=) gets the key's own name as its value: write key=\"\" for an empty string. masqlog check-config finds all of these.",
    );
    for k in CONF_KEYS {
        let (kind, default) = match (k.kind, k.default.is_empty()) {
            (ConfKind::Str, true) => ("string", "empty".to_string()),
            (ConfKind::Str, false) => ("string", format!("\\fB{}\\fR", esc(k.default))),
            (ConfKind::Int, _) => ("integer", format!("\\fB{}\\fR", esc(k.default))),
        };
        tagged(
            &mut m,
            &format!("\\fB{}\\fR ({kind}; default {default})", esc(k.name)),
            k.help,
        );
    }
    m.push_str(".SH NFCT SETTINGS\n");
    para(&mut m, "The NFCT instance that feeds MASQLOG needs:");
    for (tag, text) in [
        (
            "hash_enable=0",
            "With the default 1, NFCT keeps its own flow table and hands only DESTROY events on: no start lines.",
        ),
        (
            "event_mask=0x00000005",
            "NEW (1) and DESTROY (4): the start line at once, the end line with the kernel's times and counters.",
        ),
        (
            "netlink_socket_buffer_size, netlink_socket_buffer_maxsize",
            "e.g. 8388608 and 16777216 (the shipped examples): the buffer grows from the first to the second when the kernel reports an overrun; with reliable=1 ulogd never sees one, so the first is what counts.",
        ),
        (
            "reliable=1",
            "The kernel keeps an entry until its DESTROY event was delivered.",
        ),
        (
            "sysctl net.netfilter.nf_conntrack_acct=1",
            "packet and byte counters (without it they are 0)",
        ),
        (
            "sysctl net.netfilter.nf_conntrack_timestamp=1",
            "the kernel's start and end times in end lines",
        ),
    ] {
        tagged(&mut m, &format!("\\fB{}\\fR", esc(tag)), text);
    }
    m.push_str(".SH POSTGRESQL DESTINATION\n");
    para(
        &mut m,
        "destination=\"postgresql://USER@HOST[:PORT]/DB?password_file=/PATH\" writes every line as a row of the table masqlog.flow_log (created by masqlog db init), a batch at a time: a binary COPY in one transaction, sealed rows already committed (a replay) left out by the ledger of sequence numbers, rows without a seal kept once by their digest; each batch, its connect included, ends within send_timeout_ms (at least 1 s) and otherwise waits in the spool (timed_out= in the statistics line). Write the URL in double quotes: ulogd ends an unquoted value at the first =. ulogd keeps at most 224 bytes of a string value. host=/DIR in the URL connects over the Unix socket in DIR. The password file holds only the password on its first line, and must be a regular file (not a symlink) that neither group nor others may read, owned by the user ulogd runs as; a password in the URL itself is refused. The connection is not encrypted (no TLS): use a Unix socket, a local network or a tunnel.",
    );
    para(
        &mut m,
        "While the database is down, refuses the login, lacks the schema, holds another schema version or is out of disk, the records go to the spool (spool_dir) as for any other destination, the reason is in ulogd's log, and the spool is replayed in order once the database takes rows again. A batch sent twice (a replay after a crash between the commit and the spool's mark) is kept once: rows are unique on their time and the SHA-256 of their line. At connect and for each new day the plugin has the day's partition created, so no row waits for one at midnight.",
    );
    literal(
        &mut m,
        "[masq1]\n\
         format=text\n\
         hostname=nat-router-1\n\
         destination=\"postgresql://nat_router_1@db.example.net/masqlog?password_file=/etc/ulogd-masqlog.pgpass\"\n\
         spool_dir=/var/spool/masqlog\n\
         spool_size_mb=256",
    );
    m.push_str(&format!(".SH LINE FORMAT (VERSION {FORMAT_VERSION})\n"));
    para(
        &mut m,
        "One flow gives a start line and an end line (and, with IDENT, an ident line), joined by the conntrack id. Every line names its format version; new fields may be added to a version (readers keep unknown fields), any other change bumps it. Fields, in this order, each left out when unknown:",
    );
    for (name, meaning) in FIELDS {
        tagged(&mut m, &format!("\\fB{}\\fR", esc(name)), meaning);
    }
    para(
        &mut m,
        "format=text (the default) starts the message with the marker masqlog/1, then key=value tokens separated by single spaces. A value made only of letters, digits and ._:/@+-[] is written bare, any other in double quotes with \\\", \\\\ and \\xHH escapes, so that no value can forge a field or break the line:",
    );
    literal(&mut m, &example_lines(Format::Text).join("\n"));
    para(
        &mut m,
        "format=rfc5424: an RFC 5424 message whose MSGID is the event and whose structured data element masqlog@32473 holds every field:",
    );
    literal(&mut m, &example_lines(Format::Rfc5424).join("\n"));
    para(
        &mut m,
        "format=json: one object per message, the same names, endpoints as objects:",
    );
    literal(&mut m, &example_lines(Format::Json).join("\n"));
    para(
        &mut m,
        "text and json use the RFC 3164 header (without HOST on the local socket, as syslog(3) writes it), rfc5424 the RFC 5424 header. Over TCP every message is framed by octet counting (RFC 6587).",
    );
    m.push_str(".SH FILES\n");
    for (f, what) in [
        (
            "/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_MASQLOG.so",
            "the plugin",
        ),
        (
            "/etc/ulogd-masqlog.conf",
            "a complete example ulogd config (ulogd -c /etc/ulogd-masqlog.conf)",
        ),
        (
            "/etc/rsyslog.d/30-masqlog.conf",
            "routes the lines (program name masqlog) to /var/log/masqlog.log",
        ),
        (
            "/etc/logrotate.d/masqlog",
            "keeps /var/log/masqlog.log compressed for 180 days",
        ),
        (
            "/usr/share/doc/masqlog/examples/",
            "transparent IDENT routing, a ulogd2.service drop-in, a port-block timer",
        ),
    ] {
        tagged(&mut m, &format!("\\fI{}\\fR", esc(f)), what);
    }
    m.push_str(".SH SEE ALSO\n\\fBmasqlog\\fR(8), \\fBmasqlog\\-check\\-config\\fR(8), \\fBulogd\\fR(8), \\fBrsyslogd\\fR(8)\n");
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field the formatter writes into the examples is documented,
    /// and every documented field is a real one.
    #[test]
    fn the_fields_match_what_the_formatter_writes() {
        let text = example_lines(Format::Text).join(" ");
        let written: Vec<&str> = text
            .split(' ')
            .filter_map(|t| t.split_once('=').map(|(k, _)| k))
            .collect();
        for k in &written {
            assert!(
                FIELDS.iter().any(|(n, _)| n == k),
                "the text format writes `{k}`, which the page does not document"
            );
        }
        for (n, _) in FIELDS {
            let absent = n.starts_with("icmp_") || *n == "ident_detail" || *n == "remote_hash";
            assert!(
                absent || written.contains(n),
                "the page documents `{n}`, which the examples never write"
            );
        }
    }

    #[test]
    fn every_key_is_on_the_page() {
        let page = render("0.0.0");
        for k in CONF_KEYS {
            assert!(
                page.contains(&format!("\\fB{}\\fR (", esc(k.name))),
                "{} missing",
                k.name
            );
        }
        assert!(page.contains("masqlog/1 ev=start nat=snat proto=tcp id=3954"));
        assert!(page.contains("[masqlog@32473"));
        assert!(page.contains("{\"masqlog\":1,\"ev\":\"end\""));
    }

    #[test]
    fn roff_escapes() {
        assert_eq!(esc(".x-y\\z"), "\\&.x\\-y\\ez");
        assert_eq!(esc("a.b"), "a.b");
    }
}
