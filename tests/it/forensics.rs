//! Answering an abuse report end to end: the built `masqlog` binary, run as
//! an operator runs it, against what the lab's kernel NAT, ulogd and
//! rsyslog really did.
//!
//! - Port blocks: `masqlog portblock apply` loads its map into the lab
//!   router next to the lab's own masquerade table; flows from two client
//!   addresses (TCP and UDP) leave with ports inside their blocks (by
//!   conntrack), and `masqlog lookup` names the client from the rule history
//!   alone, and from the plugin's log and the history together (which agree).
//! - Flow logs alone: `masqlog lookup` on rsyslog's file finds alice's
//!   flow (text and `--json`, in UTC and in a zone), and fails clearly:
//!   exit 1 for an hour later, exit 2 for an unreadable time, the file named
//!   for a truncated gzip copy; and two flows on one public port (TCP and
//!   UDP) are both shown until `--proto` tells them apart.
//!
//! `MASQLOG_PRINT=1` (with `--nocapture`) prints every command and its
//! output: the README's examples come from there.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use masqlog_command::portblock::{self, RuleFile};
use masqlog_command::when::parse_zone;
use masqlog_core::record::{Event, Timestamp};
use masqlog_core::time::utc_string;
use masqlog_lab::conntrack::CtKind;
use masqlog_lab::session::{DESTROY_WAIT, LINE_WAIT};
use masqlog_lab::topology::MASQ_V4;
use masqlog_lab::{Example, Family, FlowProto, LabError, Logged, Role, SessionOptions, wait};

use crate::cli::{masqlog, printing};
use crate::harness::{self, Env, ok};

/// Ports per client in the port-block test: 5 clients of 10.99.0.0/29
/// (.2 to .6) get 64512-65535, 63488-64511, ... on 203.0.113.1.
const PER_CLIENT: u16 = 1024;

/// A second client address inside the /29, and one outside it (which the
/// port-block map does not hold, so the lab's masquerade translates it).
const CLIENT_B: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 3);
const CLIENT_OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 9);

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A client flow from `src:sport` to the lab server of `proto` (IPv4), run
/// with socat as root in the client namespace: TCP sends 100 bytes,
/// half-closes and reads the server's reply; UDP sends one datagram and
/// reads the one that comes back.
fn flow_from(env: &Env, src: Ipv4Addr, sport: u16, proto: FlowProto) {
    let server = env.server(proto, Family::V4);
    // UDP has no end: socat stops when the whole reply is in (`readbytes`)
    // or after 20 s without it, as the lab's own flows do (the server's
    // forked reply can take seconds on a busy machine).
    let (kind, wait_secs, until) = match proto {
        FlowProto::Tcp => ("TCP4", 10, String::new()),
        FlowProto::Udp => ("UDP4", 20, format!(",readbytes={}", server.reply_bytes)),
    };
    let script = format!(
        "head -c 100 /dev/zero | socat -t {wait_secs} - '{kind}:{}:{},bind={src}:{sport}{until}'",
        server.addr().ip(),
        server.port
    );
    let reply = ok(
        env.lab.exec(Some(Role::Client), &["sh", "-c", &script]),
        &format!("{} flow from {src}:{sport}", proto.name()),
    );
    assert_eq!(
        reply.len(),
        server.reply_bytes,
        "{} flow from {src}:{sport}: reply size",
        proto.name()
    );
}

/// Waits for the end line of the flow from `src:sport` over `proto` in the
/// session's receiver file.
fn wait_end_line(env: &Env, src: IpAddr, sport: u16, proto: FlowProto) -> Logged {
    let what = format!(
        "the end line of {} {src}:{sport} in {}",
        proto.name(),
        env.rsyslog.messages_path().display()
    );
    ok(
        wait::poll(&what, LINE_WAIT, || {
            Ok::<_, LabError>(env.received().lines.into_iter().find(|l| {
                l.parsed.record.event == Event::End
                    && l.parsed.record.client.ip == src
                    && l.parsed.record.client.port == Some(sport)
                    && l.parsed.record.proto.name() == Some(proto.name())
            }))
        }),
        "masqlog end line",
    )
}

/// The middle of a logged flow: a time inside it.
fn middle(l: &Logged) -> Timestamp {
    let (Some(s), Some(e)) = (l.parsed.record.start, l.parsed.record.end) else {
        panic!("an end line without start or end: {}", l.line);
    };
    let m = (s.as_micros() + e.as_micros()) / 2;
    Timestamp::new(m.div_euclid(1_000_000), m.rem_euclid(1_000_000) as u32)
}

/// The public port of a logged flow.
fn masq_port(l: &Logged) -> u16 {
    assert_eq!(l.parsed.record.masq.ip, IpAddr::V4(MASQ_V4), "{}", l.line);
    l.parsed.record.masq.port.expect("a masq port")
}

struct BlockFlow {
    src: Ipv4Addr,
    sport: u16,
    proto: FlowProto,
}

#[test]
fn port_blocks_pick_the_public_port_and_answer_without_flow_logs() {
    let test = "port_blocks_pick_the_public_port_and_answer_without_flow_logs";
    let Some(mut env) = harness::session(test, &SessionOptions::new(Example::Local)) else {
        return;
    };
    for a in [CLIENT_B, CLIENT_OUTSIDE] {
        let cidr = format!("{a}/24");
        ok(
            env.lab.exec(
                Some(Role::Client),
                &["ip", "addr", "add", &cidr, "dev", "c-lan"],
            ),
            "adding a client address",
        );
    }

    // The port-block map, loaded into the router by the real command.
    let state = env.lab.path("portblock");
    let state_s = path_str(&state);
    let router = env.lab.ns(Role::Router);
    let reload = format!("ip netns exec {router} nft -f");
    let per_client = PER_CLIENT.to_string();
    let applied = masqlog(&[
        "portblock",
        "apply",
        "--state-dir",
        &state_s,
        "--internal",
        "10.99.0.0/29",
        "--public",
        "203.0.113.1",
        "--ports",
        "1024-65535",
        "--per-client",
        &per_client,
        "--reload-cmd",
        &reload,
        "--no-syslog",
    ]);
    assert_eq!(applied.code, Some(0), "{}", applied.all());
    let ruleset = ok(
        env.lab
            .exec(Some(Role::Router), &["nft", "list", "ruleset"]),
        "nft list ruleset",
    );
    if printing() {
        eprintln!("$ ip netns exec {router} nft list ruleset\n{ruleset}");
    }
    assert!(
        ruleset.contains("table ip masqlog_portblock")
            && ruleset.contains("priority srcnat - 10")
            && ruleset.contains("table inet masqlab"),
        "both NAT tables, ours first:\n{ruleset}"
    );
    let history = portblock::history(&state).expect("the rule history");
    assert_eq!(history.len(), 1, "one rule file");
    let rules: &RuleFile = &history[0];
    let block_a = rules.block_of(masqlog_lab::topology::CLIENT_V4).unwrap();
    let block_b = rules.block_of(CLIENT_B).unwrap();
    assert_eq!(block_a, (MASQ_V4, 64512, 65535));
    assert_eq!(block_b, (MASQ_V4, 63488, 64511));
    assert_eq!(rules.block_of(CLIENT_OUTSIDE), None);

    // TCP and UDP from both block clients, and TCP from outside the /29.
    let mut flows = Vec::new();
    for src in [masqlog_lab::topology::CLIENT_V4, CLIENT_B] {
        for proto in FlowProto::ALL {
            flows.push(BlockFlow {
                src,
                sport: env.lab.next_port(),
                proto,
            });
        }
    }
    flows.push(BlockFlow {
        src: CLIENT_OUTSIDE,
        sport: env.lab.next_port(),
        proto: FlowProto::Tcp,
    });
    for f in &flows {
        flow_from(&env, f.src, f.sport, f.proto);
    }

    let mut logged = Vec::new();
    for f in &flows {
        let src = IpAddr::V4(f.src);
        // The kernel's word: the reply tuple's destination port is the
        // public port the remote host saw.
        let ct = ok(
            env.conntrack
                .wait_destroy(src, f.sport, f.proto, DESTROY_WAIT),
            "DESTROY event",
        );
        assert_eq!(ct.kind, CtKind::Destroy);
        assert_eq!(ct.reply.dst, IpAddr::V4(MASQ_V4), "{}", ct.line);
        let public_port = ct.reply.dport.expect("a reply port");
        match rules.block_of(f.src) {
            Some((_, lo, hi)) => assert!(
                (lo..=hi).contains(&public_port),
                "{} {}:{} left as port {public_port}, outside its block {lo}-{hi}: the port-block \
                 map did not take effect\n{}",
                f.proto.name(),
                f.src,
                f.sport,
                ct.line
            ),
            // The lab's masquerade keeps the source port when it is free.
            None => assert_eq!(public_port, f.sport, "{}", ct.line),
        }
        let l = wait_end_line(&env, src, f.sport, f.proto);
        assert_eq!(
            masq_port(&l),
            public_port,
            "the plugin logs what conntrack did"
        );
        logged.push(l);
    }
    let log = path_str(&env.rsyslog.messages_path());

    for (f, l) in flows.iter().zip(&logged) {
        let public = format!("203.0.113.1:{}", masq_port(l));
        let at = utc_string(middle(l), true);
        let shown = utc_string(middle(l), false);
        let src = f.src.to_string();
        let client = format!("{}:{}", f.src, f.sport);
        let proto = f.proto.name();

        if rules.block_of(f.src).is_none() {
            // The lab's masquerade translated it: no rule file can name it.
            let r = masqlog(&[
                "lookup",
                &public,
                "--at",
                &at,
                "--portblock-state",
                &state_s,
            ]);
            assert_eq!(r.code, Some(1), "{}", r.all());
            assert!(
                r.first_line().ends_with(": no flow found")
                    && r.out.contains(&format!(
                        "no block holds {public}: the rules do not translate to that port"
                    )),
                "{}",
                r.all()
            );
            // The flow log still knows.
            let r = masqlog(&[
                "lookup",
                &public,
                "--at",
                &at,
                "--proto",
                proto,
                "--portblock-state",
                &state_s,
                &log,
            ]);
            assert_eq!(r.code, Some(0), "{}", r.all());
            assert!(
                r.first_line().ends_with(&format!(" was {client}")),
                "{}",
                r.all()
            );
            continue;
        }

        // The rule history alone, no log at all.
        let r = masqlog(&[
            "lookup",
            &public,
            "--at",
            &at,
            "--portblock-state",
            &state_s,
        ]);
        assert_eq!(r.code, Some(0), "{}", r.all());
        assert_eq!(
            r.first_line(),
            format!(
                "{public} at {shown} was {src} by the port-block rules; no flow found in the logs"
            ),
            "{}",
            r.all()
        );
        let (_, lo, hi) = rules.block_of(f.src).unwrap();
        assert!(
            r.out.contains(&format!(
                "  port-block {} (since {}), in force at the report time: {public} belongs to \
                 {src} (block {lo}-{hi})",
                rules.name(),
                utc_string(Timestamp::new(rules.timestamp, 0), false)
            )),
            "{}",
            r.all()
        );

        // The log and the history together: the client's port too, and
        // they agree.
        let r = masqlog(&[
            "lookup",
            &public,
            "--at",
            &at,
            "--proto",
            proto,
            "--portblock-state",
            &state_s,
            &log,
        ]);
        assert_eq!(r.code, Some(0), "{}", r.all());
        assert_eq!(
            r.first_line(),
            format!("{public} at {shown} was {client}"),
            "{}",
            r.all()
        );
        assert!(
            r.out.contains("  port-block agrees with the flow log"),
            "{}",
            r.all()
        );
        let j = masqlog(&[
            "lookup",
            &public,
            "--at",
            &at,
            "--proto",
            proto,
            "--portblock-state",
            &state_s,
            "--json",
            &log,
        ])
        .json();
        assert_eq!(j["found"], true, "{j}");
        assert_eq!(j["matches"][0]["client"]["ip"], src.as_str(), "{j}");
        assert_eq!(j["matches"][0]["client"]["port"], f.sport, "{j}");
        assert_eq!(j["portblock"]["rules"][0]["owner"], src.as_str(), "{j}");
        assert_eq!(
            j["portblock"]["rules"][0]["block"],
            format!("{lo}-{hi}").as_str(),
            "{j}"
        );
        assert_eq!(j["portblock"]["agrees_with_flows"], true, "{j}");

        // `portblock test` reads the same history.
        let secs = middle(l).secs.to_string();
        let r = masqlog(&[
            "portblock",
            "test",
            "--state-dir",
            &state_s,
            "--at",
            &secs,
            "--public",
            &public,
        ]);
        assert_eq!(r.code, Some(0), "{}", r.all());
        assert_eq!(r.first_line(), format!("{public} -> {src}"), "{}", r.all());
        assert!(
            r.out.contains(&format!("{src} -> 203.0.113.1:{lo}-{hi}")),
            "{}",
            r.all()
        );
    }

    // Before the first rule file: no rule was in force, and both commands
    // say so.
    let before = rules.timestamp - 3600;
    let first_public = format!("203.0.113.1:{}", masq_port(&logged[0]));
    let r = masqlog(&[
        "lookup",
        &first_public,
        "--at",
        &format!("@{before}"),
        "--portblock-state",
        &state_s,
    ]);
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(
        r.out.contains(&format!(
            "no rule file was in force yet at the report time (the first is from UNIX time {})",
            rules.timestamp
        )),
        "{}",
        r.all()
    );
    let r = masqlog(&[
        "portblock",
        "test",
        "--state-dir",
        &state_s,
        "--at",
        &before.to_string(),
        "--public",
        &first_public,
    ]);
    assert_eq!(r.code, Some(2), "{}", r.all());
    assert!(
        r.err.contains("was in force at") && r.err.contains("the oldest is from"),
        "{}",
        r.all()
    );

    let status = ok(env.ulogd.stop(), "stopping ulogd");
    assert!(status.success(), "ulogd exited with {status}");
}

/// `n` syslog lines of another program at the time prefix `ts`, each
/// different, so that they compress poorly.
fn noise(ts: &str, n: u32) -> String {
    let mut s = String::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!(
            "{ts} router sshd[7]: Connection closed by 198.51.100.{} port {} [preauth] {x:016x}\n",
            i % 250,
            1024 + i % 60000
        ));
    }
    s
}

/// A gzip copy of `log` with noise after it, cut in the middle.
fn truncated_gzip(log: &Path, dir: &Path) -> PathBuf {
    use std::io::Write;
    let text = std::fs::read_to_string(log).expect("the log");
    let ts = text
        .lines()
        .last()
        .and_then(|l| l.split(' ').next())
        .expect("a timestamp")
        .to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    gz.write_all(noise(&ts, 20_000).as_bytes()).unwrap();
    let bytes = gz.finish().unwrap();
    let p = dir.join("messages.log.1.gz");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    p
}

#[test]
fn flow_logs_alone_name_the_client_and_fail_clearly() {
    let test = "flow_logs_alone_name_the_client_and_fail_clearly";
    let Some(mut env) = harness::session(test, &SessionOptions::new(Example::Local)) else {
        return;
    };
    let (r, received) = env.logged_flow("alice", FlowProto::Tcp, Family::V4, 1000);
    let spec = r.spec.clone();
    let end = harness::line_of(&received, &r, Event::End);
    let id = end.parsed.record.id.expect("a conntrack id");
    let public = format!("203.0.113.1:{}", masq_port(&end));
    let client = spec.client().to_string();
    let t = middle(&end);
    let at = utc_string(t, true);
    // As the answer shows the report's time (microseconds only when any).
    let shown = utc_string(t, false);
    let log = path_str(&env.rsyslog.messages_path());

    // Found: the client first, the evidence after.
    let r = masqlog(&["lookup", &public, "--at", &at, &log]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert_eq!(
        r.first_line(),
        format!("{public} at {shown} was {client}"),
        "{}",
        r.all()
    );
    assert!(
        r.out
            .contains(&format!("  protocol  tcp, snat, conntrack id {id}\n")),
        "{}",
        r.all()
    );
    assert!(
        r.out.contains("  report    inside the flow\n"),
        "{}",
        r.all()
    );
    assert!(
        r.out.contains(&format!("  evidence  {log}:")),
        "{}",
        r.all()
    );
    let j = masqlog(&["lookup", &public, "--at", &at, "--json", &log]).json();
    assert_eq!(j["found"], true, "{j}");
    assert_eq!(j["query"]["public"], public.as_str(), "{j}");
    let m = &j["matches"][0];
    assert_eq!(
        m["client"]["ip"],
        spec.client().ip().to_string().as_str(),
        "{j}"
    );
    assert_eq!(m["client"]["port"], spec.sport, "{j}");
    assert_eq!(m["id"], id, "{j}");
    assert_eq!(m["fit"], "inside", "{j}");
    assert_eq!(m["state"], "ended", "{j}");
    assert_eq!(
        m["evidence"].as_array().map(Vec::len),
        Some(2),
        "a start and an end line: {j}"
    );

    // The same instant as a report from Amsterdam writes it: with its
    // zone, and without one but with --tz.
    let zone = parse_zone("Europe/Amsterdam").expect("the zone database");
    let local = zone.show(t, true);
    let r = masqlog(&["lookup", &public, "--at", &local, &log]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert_eq!(
        r.first_line(),
        format!("{public} at {} ({shown}) was {client}", zone.show(t, false)),
        "{}",
        r.all()
    );
    let (bare, _abbr) = local.rsplit_once(' ').unwrap();
    let r = masqlog(&[
        "lookup",
        &public,
        "--at",
        bare,
        "--tz",
        "Europe/Amsterdam",
        &log,
    ]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(
        r.first_line().ends_with(&format!(" was {client}")),
        "{}",
        r.all()
    );

    // The remote narrows: the right server keeps the flow, another drops it.
    let remote = spec.remote().to_string();
    let r = masqlog(&["lookup", &public, "--at", &at, "--remote", &remote, &log]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    let r = masqlog(&[
        "lookup",
        &public,
        "--at",
        &at,
        "--remote",
        "198.51.100.1",
        &log,
    ]);
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(
        r.out.contains("were left out by --remote/--proto"),
        "{}",
        r.all()
    );

    // An hour later: not found (exit 1), the flow shown as the nearest.
    let later = utc_string(Timestamp::new(t.secs + 3600, t.usecs), true);
    let later_shown = utc_string(Timestamp::new(t.secs + 3600, t.usecs), false);
    let r = masqlog(&["lookup", &public, "--at", &later, &log]);
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert_eq!(
        r.first_line(),
        format!("{public} at {later_shown}: no flow found"),
        "{}",
        r.all()
    );
    assert!(
        r.out
            .contains(&format!("nearest flow on {public} (not a match):")),
        "{}",
        r.all()
    );

    // A time that cannot be read: exit 2, nothing on stdout, the reason on
    // stderr.
    let r = masqlog(&["lookup", &public, "--at", "yesterday at tea time", &log]);
    assert_eq!(r.code, Some(2), "{}", r.all());
    assert!(r.out.is_empty(), "{}", r.all());
    assert!(
        r.err
            .starts_with("error: cannot read \"yesterday at tea time\" as a time: "),
        "{}",
        r.all()
    );

    // A truncated gzip copy: the file named, what was before the damage
    // used, and the answer marked as possibly incomplete.
    let gz = truncated_gzip(&env.rsyslog.messages_path(), env.lab.dir());
    let gz_s = path_str(&gz);
    let damaged = format!("error: {gz_s}: truncated or corrupt compressed data after ");
    let r = masqlog(&["lookup", &public, "--at", &at, &gz_s]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(r.err.starts_with(&damaged), "{}", r.all());
    assert_eq!(
        r.first_line(),
        format!("{public} at {shown} was {client}"),
        "{}",
        r.all()
    );
    assert!(
        r.out.contains("the answer may be incomplete"),
        "{}",
        r.all()
    );
    // Nothing found while an input could not be read: exit 2, not 1.
    let r = masqlog(&["lookup", &public, "--at", &later, &gz_s]);
    assert_eq!(r.code, Some(2), "{}", r.all());
    assert!(r.err.starts_with(&damaged), "{}", r.all());
    assert!(
        r.out
            .contains("incomplete: 1 input could not be read fully"),
        "{}",
        r.all()
    );

    // Ambiguity: another client's UDP flow from the same source port keeps
    // that port too (the lab's masquerade keeps a free port), so one public
    // port names two flows within the slack. The report must say which
    // protocol.
    let cidr = format!("{CLIENT_B}/24");
    ok(
        env.lab.exec(
            Some(Role::Client),
            &["ip", "addr", "add", &cidr, "dev", "c-lan"],
        ),
        "adding a client address",
    );
    flow_from(&env, CLIENT_B, spec.sport, FlowProto::Udp);
    let udp = wait_end_line(&env, IpAddr::V4(CLIENT_B), spec.sport, FlowProto::Udp);
    assert_eq!(
        masq_port(&udp),
        masq_port(&end),
        "the masquerade kept the source port: {}",
        udp.line
    );
    let t2 = middle(&udp);
    let at2 = utc_string(t2, true);
    let udp_client = format!("{CLIENT_B}:{}", spec.sport);
    let r = masqlog(&["lookup", &public, "--at", &at2, &log]);
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert_eq!(
        r.first_line(),
        format!(
            "{public} at {}: 2 candidate flows, best first: {udp_client}, {client}",
            utc_string(t2, false)
        ),
        "{}",
        r.all()
    );
    assert!(
        r.out
            .contains("  ambiguous: give --proto to tell them apart\n"),
        "{}",
        r.all()
    );
    for (proto, who) in [("udp", &udp_client), ("tcp", &client)] {
        let r = masqlog(&["lookup", &public, "--at", &at2, "--proto", proto, &log]);
        assert_eq!(r.code, Some(0), "{}", r.all());
        assert!(
            r.first_line().ends_with(&format!(" was {who}")),
            "{}",
            r.all()
        );
    }
}
