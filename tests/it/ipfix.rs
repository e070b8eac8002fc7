//! IPFIX export end to end: ulogd with `ulogd-conf/masqlog-ipfix.conf`
//! sends the lab's flows to real collectors in the server namespace, and
//! their own readers show them:
//!
//! - nfdump's `nfcapd` (IPv4 collector), read back with `nfdump -r` and a
//!   filter on the post-NAT address and port: the client, the server, the
//!   translation, the NAT44 create and delete events, the times and the
//!   counters match what the kernel reported (`conntrack -E`);
//! - pmacct's `nfacctd` on an IPv6 address, with a custom primitive for
//!   IE 371: alice's flow with her IDENT user name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use masqlog_core::ulogd_conf::UlogdConf;
use masqlog_lab::session::MASQ_ID;
use masqlog_lab::topology::{SERVER_V4, SERVER_V6, client_addr, masq_addr, server_addr};
use masqlog_lab::{
    CtEvent, Example, Family, FlowProto, IdentMode, LabError, Role, SessionOptions, Supervised,
};

use crate::harness::{self, Env, ok};

/// How long the collector may take to show a record.
const COLLECT_WAIT: Duration = Duration::from_secs(60);

/// A session whose ulogd runs `masqlog-ipfix.conf` (as it is, its
/// placeholders filled, `@REMOTE@` the collector; IDENT keys added when
/// `ident` is on), started after `collector` is listening.
fn ipfix_session(
    test: &str,
    ident: IdentMode,
    start_collector: impl FnOnce(&Env) -> Supervised,
    collector: SocketAddr,
) -> Option<(Env, Supervised)> {
    for bin in ["/usr/bin/nfcapd", "/usr/bin/nfdump", "/usr/sbin/nfacctd"] {
        if !Path::new(bin).exists() {
            harness::skip(
                test,
                &format!("{bin} is missing (Debian packages nfdump, pmacct)"),
            );
            return None;
        }
    }
    let opts = SessionOptions::new(Example::Local).with_ident(ident);
    let mut env = harness::session(test, &opts)?;
    ok(env.ulogd.stop(), "stopping the syslog ulogd");
    let so = ok(masqlog_lab::ulogd::find_plugin(), "the plugin");
    let installed = ok(
        masqlog_lab::ulogd::install_plugin(&env.lab, &so),
        "installing it",
    );
    let mut subs = masqlog_lab::ulogd::substitutions(&env.lab, "ulogd-ipfix", &installed);
    subs.remote = Some(collector);
    let mut conf = ok(
        UlogdConf::render(
            include_str!("../../ulogd-conf/masqlog-ipfix.conf"),
            "masqlog-ipfix.conf",
            &subs,
        ),
        "masqlog-ipfix.conf",
    );
    for (k, v) in ident.conf_keys() {
        conf.set(MASQ_ID, k, v);
    }
    let daemon = start_collector(&env);
    let port = collector.port().to_string();
    ok(
        masqlog_lab::wait::poll("the collector listening", COLLECT_WAIT, || {
            let out = env.lab.exec(
                Some(Role::Server),
                &["ss", "-Hlun", "sport", "=", &format!(":{port}")],
            )?;
            Ok((!out.trim().is_empty()).then_some(()))
        }),
        "the collector",
    );
    env.ulogd = ok(
        env.lab.start_ulogd("ulogd-ipfix", &conf),
        "ulogd with masqlog-ipfix.conf",
    );
    Some((env, daemon))
}

/// The files nfcapd finished (rotated), oldest first.
fn rotated(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("nfcapd.2"))
    });
    v.sort();
    v
}

/// What `nfdump -r FILE -o json FILTER` shows over the finished files.
fn nfdump(env: &Env, dir: &Path, filter: &str) -> Result<Vec<serde_json::Value>, LabError> {
    let mut all = Vec::new();
    for f in rotated(dir) {
        let f = f.to_string_lossy().into_owned();
        let out = env.lab.exec(
            None,
            &[
                "env", "TZ=UTC", "nfdump", "-q", "-r", &f, "-o", "json", filter,
            ],
        )?;
        if out.trim().is_empty() {
            continue;
        }
        // With -q: one object after another, no array around them (and
        // commas between them in some versions).
        let text = out.replace("},\n{", "}\n{");
        let text = text.trim().trim_start_matches('[').trim_end_matches(']');
        for v in serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>() {
            all.push(v.unwrap_or_else(|e| panic!("nfdump's JSON of {f}: {e}: {out}")));
        }
    }
    Ok(all)
}

fn field<'a>(rec: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    rec.get(key)
        .unwrap_or_else(|| panic!("no {key} in nfdump's record {rec:#}"))
}

/// `YYYY-MM-DDThh:mm:ss.mmm` of nfdump's JSON (local time; nfdump runs
/// with TZ=UTC) as milliseconds since the epoch.
fn millis(s: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| -> i64 {
        s.get(r)
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("time {s:?}"))
    };
    let days = masqlog_core::time::days_from_civil(n(0..4), n(5..7) as u32, n(8..10) as u32);
    ((days * 24 + n(11..13)) * 60 + n(14..16)) * 60_000 + n(17..19) * 1000 + n(20..23)
}

#[test]
fn nfcapd_receives_the_nat_events_and_nfdump_shows_the_flow() {
    let test = "nfcapd_receives_the_nat_events_and_nfdump_shows_the_flow";
    let collector = SocketAddr::new(SERVER_V4.into(), 4739);
    let mut dir = PathBuf::new();
    let Some((mut env, mut nfcapd)) = ipfix_session(
        test,
        IdentMode::Off,
        |env| {
            dir = env.lab.path("nfcapd");
            std::fs::create_dir_all(&dir).unwrap();
            let d = dir.to_string_lossy().into_owned();
            // -t 2: a finished file every 2 s (the shortest nfcapd allows),
            // which is what nfdump reads.
            ok(
                env.lab.spawn(
                    Some(Role::Server),
                    "nfcapd",
                    &[
                        "nfcapd",
                        "-w",
                        &d,
                        "-b",
                        &SERVER_V4.to_string(),
                        "-p",
                        "4739",
                        "-t",
                        "2",
                    ],
                ),
                "nfcapd",
            )
        },
        collector,
    ) else {
        return;
    };
    let r = ok(
        env.flow("alice", FlowProto::Tcp, Family::V4, 1000),
        "the flow",
    );
    let ct: Vec<CtEvent> = ok(
        env.wait_destroyed(std::slice::from_ref(&r.spec)),
        "its DESTROY",
    );
    let ct = &ct[0];
    let masq_port = ct.reply.dport.expect("the masquerade port");
    assert_eq!(ct.reply.dst, masq_addr(Family::V4));
    let filter = format!(
        "proto tcp and src xip {} and src xport {masq_port}",
        masq_addr(Family::V4)
    );
    let recs = ok(
        masqlog_lab::wait::poll(
            "the create and delete records in nfcapd's files",
            COLLECT_WAIT,
            || {
                let v = nfdump(&env, &dir, &filter)?;
                Ok((v.len() >= 2).then_some(v))
            },
        ),
        "nfdump",
    );
    assert_eq!(recs.len(), 2, "{recs:#?}");
    let create = &recs[0];
    let delete = &recs[1];
    assert_eq!(field(create, "nat_event_id"), "4", "{create:#}");
    assert_eq!(field(create, "nat_event"), "NAT44 session create");
    assert_eq!(field(delete, "nat_event_id"), "5", "{delete:#}");
    assert_eq!(field(delete, "nat_event"), "NAT44 session delete");
    for rec in [create, delete] {
        assert_eq!(
            field(rec, "src4_addr"),
            &client_addr(Family::V4).to_string()
        );
        assert_eq!(field(rec, "src_port"), r.spec.sport);
        assert_eq!(
            field(rec, "dst4_addr"),
            &server_addr(Family::V4).to_string()
        );
        assert_eq!(field(rec, "dst_port"), 8080);
        assert_eq!(
            field(rec, "src4_xlt_ip"),
            &masq_addr(Family::V4).to_string()
        );
        assert_eq!(field(rec, "src_xlt_port"), &masq_port.to_string());
        assert_eq!(field(rec, "proto"), 6);
    }
    // Times: the flow's start, within the client's run; its end after it.
    let began = r.began.as_micros() / 1000;
    let finished = r.finished.as_micros() / 1000;
    let first = millis(field(delete, "first").as_str().unwrap());
    let last = millis(field(delete, "last").as_str().unwrap());
    assert!(
        began - 1000 <= first && first <= finished,
        "first {first} not in {began}..{finished}"
    );
    assert!(first <= last && last <= finished + 60_000, "last {last}");
    // Counters: the kernel's, both directions.
    assert_eq!(
        field(delete, "in_bytes"),
        ct.orig.bytes.expect("orig bytes")
    );
    assert_eq!(
        field(delete, "in_packets"),
        ct.orig.packets.expect("orig packets")
    );
    assert_eq!(
        field(delete, "out_bytes"),
        ct.reply.bytes.expect("reply bytes")
    );
    assert_eq!(
        field(delete, "out_packets"),
        ct.reply.packets.expect("reply packets")
    );
    // nfcapd saw no sequence failures: every record was counted.
    let stats = ok(
        env.ulogd.request_stats(MASQ_ID, COLLECT_WAIT),
        "the statistics",
    );
    assert_eq!(stats.all.get("unacked"), Some(&2), "{stats:?}");
    let _ = nfcapd.stop();
}

/// pmacct's configuration: the NAT primitives it knows, and IE 371 as a
/// custom primitive (a variable-length string).
fn nfacctd_conf(dir: &Path, listen: SocketAddr) -> PathBuf {
    // pmacct 1.7.7 (Debian 12) copies an IANA element below 384 into a
    // custom primitive only when its length is exactly `len`
    // (NF_custom_primitives_handler in pkt_handlers.c); `len=vlen` works
    // there only for enterprise elements and 384 up, and for every element
    // in later pmacct. alice is 5 bytes.
    let prims = dir.join("primitives.lst");
    std::fs::write(
        &prims,
        "name=ipfix_user field_type=371 len=5 semantics=str\n",
    )
    .unwrap();
    let conf = dir.join("nfacctd.conf");
    std::fs::write(
        &conf,
        format!(
            "daemonize: false\n\
             nfacctd_ip: {ip}\n\
             nfacctd_port: {port}\n\
             aggregate_primitives: {prims}\n\
             plugins: print[nat]\n\
             aggregate[nat]: src_host, dst_host, src_port, dst_port, proto, post_nat_src_host, post_nat_src_port, nat_event, timestamp_start, ipfix_user\n\
             print_output[nat]: csv\n\
             print_output_file[nat]: {out}\n\
             print_output_file_append[nat]: true\n\
             print_refresh_time[nat]: 1\n",
            ip = listen.ip(),
            port = listen.port(),
            prims = prims.display(),
            out = dir.join("nat.csv").display(),
        ),
    )
    .unwrap();
    conf
}

/// The rows of nfacctd's CSV file as column name (lowercase) to value.
fn csv_rows(path: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut header: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split(',').collect();
        if line.starts_with("SRC_IP") || line.to_ascii_uppercase().starts_with("SRC_") {
            header = cols.iter().map(|c| c.to_ascii_lowercase()).collect();
            continue;
        }
        if header.len() == cols.len() {
            rows.push(
                header
                    .iter()
                    .cloned()
                    .zip(cols.iter().map(|c| c.to_string()))
                    .collect(),
            );
        }
    }
    rows
}

#[test]
fn nfacctd_on_an_ipv6_collector_shows_the_flow_with_its_ident_user() {
    let test = "nfacctd_on_an_ipv6_collector_shows_the_flow_with_its_ident_user";
    let collector = SocketAddr::new(SERVER_V6.into(), 4740);
    let mut dir = PathBuf::new();
    let Some((mut env, mut nfacctd)) = ipfix_session(
        test,
        IdentMode::Plain,
        |env| {
            dir = env.lab.path("nfacctd");
            std::fs::create_dir_all(&dir).unwrap();
            let conf = nfacctd_conf(&dir, collector);
            ok(
                env.lab.spawn(
                    Some(Role::Server),
                    "nfacctd",
                    &["nfacctd", "-f", &conf.to_string_lossy()],
                ),
                "nfacctd",
            )
        },
        collector,
    ) else {
        return;
    };
    let spec = env
        .flow_spec("alice", FlowProto::Tcp, Family::V4, 700)
        .holding(Duration::from_secs(2));
    let r = ok(env.lab.flow(&spec), "alice's flow");
    let ct = ok(
        env.wait_destroyed(std::slice::from_ref(&r.spec)),
        "its DESTROY",
    );
    let masq_port = ct[0].reply.dport.expect("the masquerade port").to_string();
    let csv = dir.join("nat.csv");
    let rows = ok(
        masqlog_lab::wait::poll("alice's flow in nfacctd's CSV", COLLECT_WAIT, || {
            let rows: Vec<_> = csv_rows(&csv)
                .into_iter()
                .filter(|row| row.get("post_nat_src_port") == Some(&masq_port))
                .collect();
            Ok(rows
                .iter()
                .any(|row| row.get("ipfix_user").is_some_and(|u| u == "alice"))
                .then_some(rows))
        }),
        &format!(
            "nfacctd (its CSV: {:?}; its output: {:?}; ulogd: {:?})",
            std::fs::read_to_string(&csv).unwrap_or_default(),
            std::fs::read_to_string(env.lab.path("nfacctd.out")).unwrap_or_default(),
            env.ulogd.log()
        ),
    );
    let named = rows
        .iter()
        .find(|row| row.get("ipfix_user").is_some_and(|u| u == "alice"))
        .unwrap();
    let col = |k: &str| named.get(k).map(String::as_str).unwrap_or("");
    assert_eq!(
        col("src_ip"),
        client_addr(Family::V4).to_string(),
        "{named:?}"
    );
    assert_eq!(col("src_port"), r.spec.sport.to_string(), "{named:?}");
    assert_eq!(
        col("dst_ip"),
        server_addr(Family::V4).to_string(),
        "{named:?}"
    );
    assert_eq!(col("dst_port"), "8080", "{named:?}");
    assert_eq!(
        col("post_nat_src_ip"),
        masq_addr(Family::V4).to_string(),
        "{named:?}"
    );
    // NAT44 session create (4) or delete (5), never an older numbering.
    assert!(["4", "5"].contains(&col("nat_event")), "{named:?}");
    let _ = nfacctd.stop();
}
