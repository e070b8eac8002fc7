//! The PostgreSQL destination against a real PostgreSQL 15 (a throwaway
//! cluster on a Unix socket): two writers into one database, an outage of
//! the database with a spool, no duplicates, `lookup --db`'s inputs, and
//! the refusals (wrong password, another schema version), and `verify --db`
//! over sealed rows, changed, deleted and never-sent ones among them.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use masqlog::sink::{Level, Writer, drops::DropSource};
use masqlog_command::db;
use masqlog_command::lookup;
use masqlog_core::config::{Config, Destination, PgTarget, SealConfig, SealMode, SpoolConfig};
use masqlog_core::record::{
    Counters, Endpoint, Event, FlowRecord, NatKind, Proto, Remote, Timestamp,
};
use masqlog_lab::{TempCluster, wait::poll};

const LONG: Duration = Duration::from_secs(60);

struct NoWake;
impl masqlog::sink::Waker for NoWake {
    fn wake(&self) {}
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Flow `n` of router `r`: masquerade 192.0.2.R:(20000 + n), a start and
/// an end record.
fn flow(r: u8, n: u16, t0: i64) -> [FlowRecord; 2] {
    let start = Timestamp::new(t0 + i64::from(n), 0);
    let end = Timestamp::new(t0 + i64::from(n) + 5, 0);
    let base = FlowRecord {
        event: Event::Start,
        nat: NatKind::Snat,
        proto: Proto::Tcp,
        id: Some(u32::from(n) + 1000 * u32::from(r)),
        client: Endpoint {
            ip: ip(&format!("10.99.{r}.2")),
            port: Some(40000 + n),
        },
        masq: Endpoint {
            ip: ip(&format!("192.0.2.{r}")),
            port: Some(20000 + n),
        },
        remote: Remote::Shown(Endpoint {
            ip: ip("203.0.113.7"),
            port: Some(443),
        }),
        start: Some(start),
        end: None,
        out: None,
        inbound: None,
        ident: None,
    };
    let mut end_rec = base.clone();
    end_rec.event = Event::End;
    end_rec.end = Some(end);
    end_rec.out = Some(Counters {
        packets: 5,
        bytes: 400,
    });
    end_rec.inbound = Some(Counters {
        packets: 4,
        bytes: 3000,
    });
    [base, end_rec]
}

fn config(url: String, host: &str, spool: &std::path::Path) -> Config {
    Config {
        destination: Destination::Postgres(PgTarget::parse(&url).unwrap()),
        queue_size: 4096,
        stats_interval: None,
        send_timeout: Duration::from_secs(5),
        retry_interval: Duration::from_millis(200),
        hostname: Some(host.into()),
        spool: Some(SpoolConfig {
            dir: spool.to_path_buf(),
            max_bytes: 64 << 20,
            sync: Duration::from_millis(100),
        }),
        seal: SealConfig {
            mode: SealMode::Off,
            ..Config::default().seal
        },
        ..Config::default()
    }
}

fn rows(c: &TempCluster, filter: &str) -> i64 {
    c.psql(
        "masqlog",
        &format!("SELECT count(*) FROM masqlog.flow_log {filter}"),
    )
    .unwrap()
    .parse()
    .unwrap()
}

fn setup() -> Option<(TempCluster, String)> {
    if !TempCluster::available() || masqlog_lab::process::effective_uid().ok() != Some(0) {
        eprintln!("skipped: needs root and PostgreSQL 15 (/usr/lib/postgresql/15/bin)");
        return None;
    }
    let c = TempCluster::start().unwrap();
    c.psql("postgres", "CREATE DATABASE masqlog").unwrap();
    let admin = c.superuser_url_with_file("masqlog").unwrap();
    let mut client = db::connect(&admin).unwrap();
    assert!(db::init(&mut client, 3).unwrap());
    // Again: the same version is found, nothing changes.
    assert!(!db::init(&mut client, 3).unwrap());
    for (role, group) in [
        ("gw1", "masqlog_writer"),
        ("gw2", "masqlog_writer"),
        ("desk", "masqlog_reader"),
    ] {
        c.psql(
            "masqlog",
            &format!("CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}' IN ROLE {group}"),
        )
        .unwrap();
    }
    Some((c, admin))
}

fn role_url(c: &TempCluster, role: &str) -> String {
    let f = c.password_file(role, &format!("pw-{role}")).unwrap();
    format!("{}&password_file={}", c.url(role, "masqlog"), f.display())
}

#[test]
fn two_routers_one_database_an_outage_and_lookup_finds_each_router() {
    let Some((mut c, _admin)) = setup() else {
        return;
    };
    let spools = tempfile::tempdir().unwrap();
    let t0 = Timestamp::now().secs - 600;
    let writers: Vec<Writer> = [1u8, 2]
        .iter()
        .map(|&r| {
            let cfg = config(
                role_url(&c, &format!("gw{r}")),
                &format!("gw{r}"),
                &spools.path().join(format!("gw{r}")),
            );
            Writer::start(&cfg, Arc::new(NoWake), DropSource::Process).unwrap()
        })
        .collect();
    const N: u16 = 300;
    for n in 0..N {
        for (i, w) in writers.iter().enumerate() {
            for rec in flow(i as u8 + 1, n, t0) {
                assert!(w.submit(rec));
            }
        }
    }
    let want = i64::from(N) * 4;
    poll("the first rows in the database", LONG, || {
        Ok((rows(&c, "") == want).then_some(()))
    })
    .unwrap();

    // The database goes away; records keep coming (to the spool).
    c.stop().unwrap();
    for n in N..2 * N {
        for (i, w) in writers.iter().enumerate() {
            for rec in flow(i as u8 + 1, n, t0) {
                assert!(w.submit(rec));
            }
        }
    }
    poll("both writers to notice the outage", LONG, || {
        Ok(writers.iter().all(|w| w.stats().failed > 0).then_some(()))
    })
    .unwrap();
    c.restart().unwrap();
    let want = i64::from(2 * N) * 4;
    poll("every row after the outage", LONG, || {
        Ok((rows(&c, "") >= want).then_some(()))
    })
    .unwrap();
    for w in writers {
        let notices = w.take_notices();
        let s = w.stop(LONG);
        assert_eq!(s.dropped, 0, "{s:?} {notices:?}");
    }
    // Exactly once: no line twice, none missing.
    assert_eq!(rows(&c, ""), want);
    assert_eq!(
        c.psql(
            "masqlog",
            "SELECT count(DISTINCT line) FROM masqlog.flow_log"
        )
        .unwrap(),
        want.to_string()
    );
    assert_eq!(rows(&c, "WHERE router = 'gw1'"), want / 2);
    assert_eq!(
        c.psql(
            "masqlog",
            "SELECT count(*) FROM masqlog.flows WHERE end_at IS NOT NULL"
        )
        .unwrap(),
        (want / 2).to_string()
    );
    // The default partition stayed empty: the writers made their days.
    assert_eq!(
        c.psql("masqlog", "SELECT count(*) FROM masqlog.flow_log_default")
            .unwrap(),
        "0"
    );
    // A row sent again is kept once.
    c.psql(
        "masqlog",
        "INSERT INTO masqlog.flow_log (at, router, instance, event, line, digest) \
         SELECT at, router, instance, event, line, digest FROM masqlog.flow_log LIMIT 10 \
         ON CONFLICT DO NOTHING",
    )
    .unwrap();
    assert_eq!(rows(&c, ""), want);

    // The abuse desk's lookup: each router's flow, from the database.
    let desk = role_url(&c, "desk");
    for r in [1u8, 2] {
        let n = 450u16; // sent during the outage
        let public = format!("192.0.2.{r}:{}", 20000 + n);
        let at = format!("@{}", t0 + i64::from(n) + 2);
        let (public_ip, public_port) = lookup::query::parse_public(&public).unwrap();
        let q = lookup::AbuseReport {
            public_ip,
            public_port,
            at: masqlog_command::when::parse_report_time(
                &at,
                &Ok(masqlog_command::when::Zone::utc()),
            )
            .unwrap(),
            remote: None,
            proto: None,
            slack: lookup::DEFAULT_SLACK_SECS,
            max_age: Some(lookup::DEFAULT_MAX_AGE_SECS),
        };
        let mut client = db::connect(&desk).unwrap();
        let (scan, verdict) = db::answer(&mut client, &q).unwrap();
        assert_eq!(verdict.matches.len(), 1, "{:?}", scan.notes);
        let ev = scan.evidence(&verdict.matches[0].flow);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(
            ev.iter()
                .all(|e| e.file.starts_with("postgresql masqlog.flow_log_")
                    && e.file.contains(&format!("router gw{r}"))),
            "{ev:?}"
        );
        assert!(
            ev[0]
                .text
                .contains(&format!("client=10.99.{r}.2:{}", 40000 + n))
        );
    }
    // The desk may read, not write.
    let mut client = db::connect(&desk).unwrap();
    let e = client
        .batch_execute("DELETE FROM masqlog.flow_log")
        .unwrap_err();
    assert!(db::describe(&e).contains("permission denied"), "{e}");
}

#[test]
fn wrong_password_and_another_schema_version_are_named() {
    let Some((c, admin)) = setup() else { return };
    let spool = tempfile::tempdir().unwrap();
    let bad = c.password_file("gw1-bad", "not-the-password").unwrap();
    let url = format!(
        "{}&password_file={}",
        c.url("gw1", "masqlog"),
        bad.display()
    );
    let w = Writer::start(
        &config(url, "gw1", spool.path()),
        Arc::new(NoWake),
        DropSource::Process,
    )
    .unwrap();
    for rec in flow(1, 0, Timestamp::now().secs) {
        assert!(w.submit(rec));
    }
    let notice = poll("the writer's notice", LONG, || {
        Ok(w.take_notices().into_iter().find(|n| {
            n.level == Level::Error && n.message.contains("password authentication failed")
        }))
    })
    .unwrap();
    assert!(
        !notice.message.contains("not-the-password"),
        "{}",
        notice.message
    );
    // Nothing lost: it waits in the spool.
    let s = w.stop(LONG);
    assert_eq!(s.dropped, 0, "{s:?}");

    // Another version: refused by the command, naming both and the fix.
    c.psql("masqlog", "UPDATE masqlog.schema_version SET version = 2")
        .unwrap();
    let mut client = db::connect(&admin).unwrap();
    let e = db::check_version(&mut client).unwrap_err().to_string();
    assert!(e.contains("version 2") && e.contains("version 1"), "{e}");
    c.psql("masqlog", "UPDATE masqlog.schema_version SET version = 0")
        .unwrap();
    let e = db::check_version(&mut client).unwrap_err().to_string();
    assert!(e.contains("masqlog db upgrade"), "{e}");
    // And by the plugin.
    let w = Writer::start(
        &config(role_url(&c, "gw1"), "gw1", spool.path()),
        Arc::new(NoWake),
        DropSource::Process,
    )
    .unwrap();
    poll("the plugin's refusal", LONG, || {
        Ok(w.take_notices().into_iter().find(|n| {
            n.message
                .contains("schema version 0, this plugin writes version 1")
        }))
    })
    .unwrap();
    w.stop(LONG);
}

// ---- End to end: real ulogd on two lab routers, one database ----

use masqlog_core::ulogd_conf::UlogdConf;
use masqlog_lab::session::MASQ_ID;
use masqlog_lab::{Example, Family, FlowProto, FlowSpec, Session, SessionOptions, Signal};

use crate::harness::{self, ok};

/// Start and end rows, all rows and distinct lines of `router`'s flows.
fn flow_rows(c: &TempCluster, router: &str, flows: &[FlowSpec]) -> [i64; 4] {
    let ports: Vec<String> = flows.iter().map(|f| f.sport.to_string()).collect();
    let out = c
        .psql(
            "masqlog",
            &format!(
                "SELECT count(*) FILTER (WHERE event = 'start'), count(*) FILTER (WHERE event = 'end'), \
                 count(*), count(DISTINCT line) FROM masqlog.flow_log \
                 WHERE router = '{router}' AND client_port IN ({})",
                ports.join(",")
            ),
        )
        .unwrap();
    let v: Vec<i64> = out.split('|').map(|x| x.parse().unwrap()).collect();
    [v[0], v[1], v[2], v[3]]
}

/// Waits until each flow has one start and one end row: exactly once.
fn assert_in_db_once(c: &TempCluster, router: &str, flows: &[FlowSpec]) {
    let n = flows.len() as i64;
    let got = poll(
        &format!("{n} flows of {router} in the database"),
        LONG,
        || {
            let r = flow_rows(c, router, flows);
            Ok((r[0] >= n && r[1] >= n).then_some(r))
        },
    );
    let r = got.unwrap_or_else(|e| panic!("{e}: {:?}", flow_rows(c, router, flows)));
    assert_eq!(
        r,
        [n, n, 2 * n, 2 * n],
        "{router}: start, end, rows, distinct lines"
    );
}

fn router_session(test: &str, c: &TempCluster, n: u8) -> Option<harness::Env> {
    let mut opts = SessionOptions::new(Example::Relp);
    let host = format!("gw{n}");
    // In double quotes: ulogd ends an unquoted value at `=`.
    opts.set_key(
        MASQ_ID,
        "destination",
        &format!("\"{}\"", role_url(c, &host)),
    );
    opts.set_key(MASQ_ID, "hostname", &host);
    // One router writes text lines, the other RFC 5424.
    if n == 1 {
        opts.set_key(MASQ_ID, "format", "text");
    }
    opts.set_key(MASQ_ID, "retry_interval_ms", "200");
    harness::session(test, &opts)
}

fn flows(s: &Session, n: usize) -> Vec<FlowSpec> {
    (0..n)
        .map(|i| {
            let family = if i % 2 == 0 { Family::V4 } else { Family::V6 };
            ok(s.flow("bob", FlowProto::Tcp, family, 20), "flow").spec
        })
        .collect()
}

#[test]
fn two_ulogd_routers_one_database_outage_sigterm_and_kill_9() {
    let test = "two_ulogd_routers_one_database_outage_sigterm_and_kill_9";
    let Some((mut c, admin)) = setup() else {
        return;
    };
    let Some(mut r1) = router_session(test, &c, 1) else {
        return;
    };
    let Some(mut r2) = router_session(test, &c, 2) else {
        return;
    };

    // Both routers write; lookup finds each router's flow.
    let a1 = flows(&r1, 2);
    let a2 = flows(&r2, 2);
    ok(r1.wait_destroyed(&a1), "DESTROY on gw1");
    ok(r2.wait_destroyed(&a2), "DESTROY on gw2");
    assert_in_db_once(&c, "gw1", &a1);
    assert_in_db_once(&c, "gw2", &a2);

    // The database stops for 30 s under steady load on both routers.
    c.stop().unwrap();
    let outage = std::time::Instant::now();
    let (mut b1, mut b2) = (Vec::new(), Vec::new());
    // A flow on each router every 300 ms or so: steady, and within what
    // the lab's `conntrack -E` watch reports without losing events.
    while outage.elapsed() < Duration::from_secs(30) {
        b1.extend(flows(&r1, 1));
        b2.extend(flows(&r2, 1));
        std::thread::sleep(Duration::from_millis(250));
    }
    ok(r1.wait_destroyed(&b1), "DESTROY on gw1");
    ok(r2.wait_destroyed(&b2), "DESTROY on gw2");
    for r in [&mut r1, &mut r2] {
        let s = ok(
            r.ulogd.request_stats(MASQ_ID, Duration::from_secs(30)),
            "stats",
        );
        assert!(s.failed > 0 && s.dropped == 0, "{s:?}");
    }
    let log = r1.ulogd.log();
    assert!(
        log.contains("unreachable: terminating connection due to administrator command"),
        "the outage is not named:\n{log}"
    );
    c.restart().unwrap();
    assert_in_db_once(&c, "gw1", &b1);
    assert_in_db_once(&c, "gw2", &b2);

    // SIGTERM of ulogd right after a burst (a batch on its way): what it
    // did not send is kept in the spool and sent by the next ulogd, once.
    let conf1 = UlogdConf::from_text(&std::fs::read_to_string(r1.ulogd.conf_path()).unwrap());
    let c1 = flows(&r1, 20);
    ok(r1.wait_destroyed(&c1), "DESTROY on gw1");
    ok(r1.ulogd.stop(), "SIGTERM to ulogd on gw1");
    r1.ulogd = ok(r1.lab.start_ulogd("ulogd-2", &conf1), "a new ulogd on gw1");
    assert_in_db_once(&c, "gw1", &c1);

    // kill -9 of ulogd with records in its spool (the database down): the
    // next ulogd replays them once.
    let conf2 = UlogdConf::from_text(&std::fs::read_to_string(r2.ulogd.conf_path()).unwrap());
    c.stop().unwrap();
    let d2 = flows(&r2, 10);
    ok(r2.wait_destroyed(&d2), "DESTROY on gw2");
    poll("gw2's records in its spool", LONG, || {
        let s = r2.ulogd.request_stats(MASQ_ID, Duration::from_secs(10))?;
        Ok((s.all.get("spooled").copied().unwrap_or(0) >= 20).then_some(()))
    })
    .unwrap();
    ok(r2.ulogd.signal(Signal::Kill), "SIGKILL to ulogd on gw2");
    let _ = r2.ulogd.wait_exit(Duration::from_secs(10));
    c.restart().unwrap();
    r2.ulogd = ok(r2.lab.start_ulogd("ulogd-2", &conf2), "a new ulogd on gw2");
    assert_in_db_once(&c, "gw2", &d2);

    // kill -9 while the database takes rows: no line twice (a batch
    // committed but not yet marked in the spool is sent again and kept
    // once); what the killed ulogd held in memory is the documented loss.
    let e2 = flows(&r2, 10);
    ok(r2.ulogd.signal(Signal::Kill), "SIGKILL to ulogd on gw2");
    let _ = r2.ulogd.wait_exit(Duration::from_secs(10));
    r2.ulogd = ok(
        r2.lab.start_ulogd("ulogd-3", &conf2),
        "a third ulogd on gw2",
    );
    let e = flows(&r2, 1);
    ok(r2.wait_destroyed(&e), "DESTROY on gw2");
    assert_in_db_once(&c, "gw2", &e);
    let r = flow_rows(&c, "gw2", &e2);
    assert_eq!(r[2], r[3], "a line twice after kill -9: {r:?}");

    // Nothing in the default partition; every line once in the database.
    assert_eq!(
        c.psql(
            "masqlog",
            "SELECT count(*) - count(DISTINCT line) FROM masqlog.flow_log"
        )
        .unwrap(),
        "0"
    );
    assert_eq!(
        c.psql("masqlog", "SELECT count(*) FROM masqlog.flow_log_default")
            .unwrap(),
        "0"
    );

    // `masqlog lookup --db` as the desk runs it: gw1's flow of the outage.
    let f = &b1[b1.len() / 2];
    let public_and_start = |router: &str, sport: u16| -> (String, String) {
        let out = c
            .psql(
                "masqlog",
                &format!(
                    "SELECT host(masq_ip) || ':' || masq_port, to_char(start_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
                     FROM masqlog.flow_log WHERE router = '{router}' AND client_port = {sport} AND event = 'start'"
                ),
            )
            .unwrap();
        let (a, b) = out.split_once('|').unwrap();
        (a.to_string(), b.to_string())
    };
    let (masq, started) = public_and_start("gw1", f.sport);
    let desk = role_url(&c, "desk");
    let ran = crate::cli::masqlog(&["lookup", &masq, "--at", &started, "--db", &desk]);
    assert_eq!(ran.code, Some(0), "{}", ran.all());
    assert!(ran.out.contains("router gw1"), "{}", ran.all());
    assert!(ran.out.contains(&format!(":{}", f.sport)), "{}", ran.all());
    // With gw1's verification key: only rows whose seal verifies count,
    // and they do (the row keeps the line as it was sealed).
    let key = r1.lab.path("verify.key");
    let ran = crate::cli::masqlog(&[
        "lookup",
        &masq,
        "--at",
        &started,
        "--db",
        &desk,
        "--key",
        &key.to_string_lossy(),
    ]);
    assert_eq!(ran.code, Some(0), "{}", ran.all());
    assert!(
        ran.out.contains("authenticated: 2 lines verified"),
        "{}",
        ran.all()
    );
    // Every row gw1 wrote verifies with its key, through the outage, the
    // SIGTERM and both kill -9s: nothing forged, altered, deleted or lost
    // between sequence numbers.
    let ran = crate::cli::masqlog(&["verify", "--key", &key.to_string_lossy(), "--db", &desk]);
    assert_eq!(ran.code, Some(0), "{}", ran.all());
    assert!(
        ran.out.contains("/masq1: intact: ") && ran.out.contains("every chain is intact"),
        "{}",
        ran.all()
    );
    assert!(!ran.out.contains("forged"), "{}", ran.all());
    // gw2's rows are there too, and without its key they are only counted.
    assert!(ran.out.contains("no key given for it"), "{}", ran.all());
    // A batch of reports: one flow of each router, and one of neither.
    let g = &b2[b2.len() / 2];
    let (masq2, started2) = public_and_start("gw2", g.sport);
    let reports = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        reports.path(),
        format!("public,time\n{masq},{started}\n{masq2},{started2}\n198.51.100.9:1,{started}\n"),
    )
    .unwrap();
    let ran = crate::cli::masqlog(&[
        "lookup",
        "--reports",
        &reports.path().to_string_lossy(),
        "--db",
        &desk,
    ]);
    assert_eq!(ran.code, Some(1), "one report is not found: {}", ran.all());
    assert!(
        ran.out.contains("router gw1") && ran.out.contains("router gw2"),
        "{}",
        ran.all()
    );
    assert!(ran.out.contains("report 4: "), "{}", ran.all());
    // A time without a flow: not found, exit 1.
    let ran = crate::cli::masqlog(&[
        "lookup",
        &masq,
        "--at",
        "2001-01-01T00:00:00Z",
        "--db",
        &desk,
    ]);
    assert_eq!(ran.code, Some(1), "{}", ran.all());
    let _ = admin;
}

#[test]
fn db_commands_and_their_refusals() {
    if !TempCluster::available() || masqlog_lab::process::effective_uid().ok() != Some(0) {
        eprintln!("skipped: needs root and PostgreSQL 15");
        return;
    }
    let c = TempCluster::start().unwrap();
    c.psql("postgres", "CREATE DATABASE masqlog").unwrap();
    let admin = c.superuser_url_with_file("masqlog").unwrap();
    // No schema yet: named, with the command that makes it.
    let ran = crate::cli::masqlog(&["db", "status", "--db", &admin]);
    ran.refused("no masqlog schema: run `masqlog db init");
    let ran = crate::cli::masqlog(&[
        "lookup",
        "192.0.2.1:1",
        "--at",
        "@1795264662",
        "--db",
        &admin,
    ]);
    ran.refused("no masqlog schema");
    let ran = crate::cli::masqlog(&["db", "init", "--db", &admin, "--ahead", "3"]);
    assert_eq!(ran.code, Some(0), "{}", ran.all());
    assert!(
        ran.out.contains("created masqlog schema version 1"),
        "{}",
        ran.all()
    );
    let ran = crate::cli::masqlog(&["db", "init", "--db", &admin, "--ahead", "3"]);
    assert!(ran.out.contains("already holds"), "{}", ran.all());
    // Yesterday to 3 days ahead: 5 partitions; `partitions --ahead 7` adds 4.
    let ran = crate::cli::masqlog(&["db", "partitions", "--db", &admin, "--ahead", "7"]);
    assert_eq!(ran.code, Some(0), "{}", ran.all());
    assert!(
        ran.out.starts_with("4 daily partitions created"),
        "{}",
        ran.all()
    );
    let ran = crate::cli::masqlog(&["db", "status", "--db", &admin]);
    assert_eq!(
        ran.out.matches("masqlog.flow_log_").count(),
        9,
        "{}",
        ran.all()
    );
    // A row in the default partition is warned about.
    c.psql(
        "masqlog",
        "INSERT INTO masqlog.flow_log (at, router, instance, event, line, digest) \
         VALUES ('2001-01-01T00:00:00Z', 'gw9', 'masqlog', 'other', 'x', '\\x00')",
    )
    .unwrap();
    let ran = crate::cli::masqlog(&["db", "status", "--db", &admin]);
    assert!(
        ran.err.contains("default partition holds 1 rows"),
        "{}",
        ran.all()
    );
    // Retention drops whole partitions: keeping 0 days drops yesterday's.
    let ran = crate::cli::masqlog(&["db", "retention", "--db", &admin, "--keep-days", "0"]);
    assert_eq!(ran.code, Some(0), "{}", ran.all());
    assert!(ran.out.contains("1 partitions dropped"), "{}", ran.all());
    // Another version: both named, and the fix.
    c.psql("masqlog", "UPDATE masqlog.schema_version SET version = 7")
        .unwrap();
    let ran = crate::cli::masqlog(&["db", "upgrade", "--db", &admin]);
    ran.refused("schema version 7; this masqlog reads and writes version 1");
    // Wrong password, a password in the URL, a readable password file.
    let bad = c.password_file("bad", "nope").unwrap();
    let url = format!(
        "{}&password_file={}",
        c.url("postgres", "masqlog"),
        bad.display()
    );
    crate::cli::masqlog(&["db", "status", "--db", &url]).refused("password authentication failed");
    crate::cli::masqlog(&[
        "db",
        "status",
        "--db",
        "postgresql://u:secret@localhost/masqlog",
    ])
    .refused("no password in the URL");
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let ran = crate::cli::masqlog(&["db", "status", "--db", &url]);
    ran.refused("has mode 0644");
    assert!(!ran.err.contains("nope"), "{}", ran.all());
}

/// The same batch twice through the destination's own COPY code (a replay
/// of a batch the database had committed): the second COPY meets the
/// unique key and goes through the staging table; nothing is doubled, and
/// a batch of old and new rows inserts only the new ones.
#[test]
fn a_batch_sent_again_is_kept_once() {
    let Some((c, _admin)) = setup() else { return };
    let t0 = Timestamp::now().secs - 60;
    let hdr = |t: Timestamp| masqlog_core::format::Header {
        pri: 30,
        timestamp: t,
        hostname: Some("gw1"),
        app: "masqlog",
        pid: 7,
    };
    let msg = |n: u16| {
        let mut out = Vec::new();
        for rec in flow(1, n, t0) {
            let mut m = Vec::new();
            masqlog_core::format::write_syslog(
                masqlog_core::config::Format::Text,
                &hdr(Timestamp::new(t0 + 100, 0)),
                &rec,
                &mut m,
            );
            out.push(m);
        }
        out
    };
    let first: Vec<Vec<u8>> = (0..50).flat_map(msg).collect();
    let mut pg = masqlog::sink::pg::Postgres::new(PgTarget::parse(&role_url(&c, "gw1")).unwrap());
    pg.deliver(&first, LONG).unwrap();
    assert_eq!(rows(&c, ""), 100);
    pg.deliver(&first, LONG).unwrap();
    assert_eq!(rows(&c, ""), 100);
    let mixed: Vec<Vec<u8>> = (25..75).flat_map(msg).collect();
    pg.deliver(&mixed, LONG).unwrap();
    assert_eq!(rows(&c, ""), 150);
    assert_eq!(
        c.psql(
            "masqlog",
            "SELECT count(DISTINCT line) FROM masqlog.flow_log"
        )
        .unwrap(),
        "150"
    );
    // IDENT's user as the identd's bytes, endpoints as inet, times to the
    // microsecond.
    let mut rec = flow(1, 999, t0)[1].clone();
    rec.end = Some(Timestamp::new(t0 + 2000, 123_456));
    rec.masq.ip = "2001:db8::1".parse().unwrap();
    rec.ident = Some(masqlog_core::record::IdentInfo {
        status: masqlog_core::record::IdentStatus::User,
        user: Some(b"al\\ice\xff".to_vec()),
        opsys: Some(b"UNIX".to_vec()),
        detail: None,
    });
    let mut m = Vec::new();
    masqlog_core::format::write_syslog(
        masqlog_core::config::Format::Text,
        &hdr(Timestamp::new(t0 + 100, 0)),
        &rec,
        &mut m,
    );
    pg.deliver(&[m], LONG).unwrap();
    assert_eq!(
        c.psql(
            "masqlog",
            "SELECT ident_status, encode(ident_user, 'hex'), masq_ip, masq_port, \
             extract(microseconds FROM end_at)::int % 1000000 \
             FROM masqlog.flow_log WHERE ident_status IS NOT NULL"
        )
        .unwrap(),
        format!(
            "user|{}|2001:db8::1|{}|123456",
            b"al\\ice\xff"
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            20000 + 999
        )
    );
    // A message that is no row (no syslog header) is refused on its own.
    let e = pg
        .deliver(&[b"masqlog/1 ev=start".to_vec()], LONG)
        .unwrap_err();
    assert!(e.contains("not a row"), "{e}");
}

/// Flows 0..n of router gw1 as text lines sealed by writer gw1/masq1, run
/// `run` (seq 1 ..= 2n: start and end of each flow).
fn sealed_lines(key: &masqlog_core::seal::VerifyKey, run: u64, n: u16, t0: i64) -> Vec<Vec<u8>> {
    use masqlog_core::config::Format;
    let mut chain = masqlog_core::seal::Chain::start(key.initial_state(), "masq1", run).unwrap();
    (0..n)
        .flat_map(|i| flow(1, i, t0))
        .map(|rec| {
            let mut m = Vec::new();
            masqlog_core::format::write_syslog(
                Format::Text,
                &masqlog_core::format::Header {
                    pri: 30,
                    timestamp: Timestamp::new(t0 + 100, 0),
                    hostname: Some("gw1"),
                    app: "masqlog",
                    pid: 7,
                },
                &rec,
                &mut m,
            );
            let body = masqlog_core::format::message_start(&m).unwrap();
            masqlog_core::format::sealing::seal_message(Format::Text, body, &mut chain, &mut m);
            m
        })
        .collect()
}

/// Sealed rows carry no per-row unique key: the ledger of committed
/// sequence ranges keeps them once. A batch sent again, a batch half old
/// and half new, a repeat within a batch, a batch of another run, and the
/// same batch sent by two connections at once (a retry while the first
/// connection's transaction still runs) each leave every line once, and a
/// writer that delivers in order keeps one ledger row per run.
#[test]
fn sealed_batches_sent_again_are_kept_once_by_the_ledger() {
    use masqlog_core::seal::VerifyKey;
    let Some((c, _admin)) = setup() else { return };
    let t0 = Timestamp::now().secs - 60;
    let key = VerifyKey::generate("gw1", t0 - 3600, 86_400).unwrap();
    let sealed = |run: u64, n: u16| sealed_lines(&key, run, n, t0);
    let distinct = || -> String {
        c.psql(
            "masqlog",
            "SELECT count(*) || ' ' || count(DISTINCT line) || ' ' || count(digest) FROM masqlog.flow_log",
        )
        .unwrap()
    };
    let all = sealed(1, 100); // 200 lines, seq 1 ..= 200
    let url = role_url(&c, "gw1");
    let mut pg = masqlog::sink::pg::Postgres::new(PgTarget::parse(&url).unwrap());
    pg.deliver(&all[..100], LONG).unwrap();
    assert_eq!(distinct(), "100 100 0", "sealed rows carry no digest");
    pg.deliver(&all[..100], LONG).unwrap();
    assert_eq!(distinct(), "100 100 0");
    // Half old, half new, with a repeat inside.
    let mut mixed = all[50..150].to_vec();
    mixed.push(all[120].clone());
    pg.deliver(&mixed, LONG).unwrap();
    assert_eq!(distinct(), "150 150 0");
    // In order: one ledger row for the run.
    assert_eq!(
        c.psql(
            "masqlog",
            "SELECT writer || ' ' || run || ' ' || first_seq || ' ' || last_seq FROM masqlog.seal_ledger"
        )
        .unwrap(),
        "gw1/masq1 1 1 150"
    );
    // Out of order (a later range first), then the gap filled.
    pg.deliver(&all[180..], LONG).unwrap();
    pg.deliver(&all[140..190], LONG).unwrap();
    assert_eq!(distinct(), "200 200 0");
    // Another run with the same sequence numbers is other lines.
    let run2 = sealed(2, 10);
    pg.deliver(&run2, LONG).unwrap();
    pg.deliver(&run2, LONG).unwrap();
    assert_eq!(distinct(), "220 220 0");
    assert_eq!(
        c.psql("masqlog", "SELECT count(*) FROM masqlog.seal_ledger")
            .unwrap(),
        "2"
    );
    // The same new batch from two connections at once.
    let run3 = sealed(3, 200);
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (url, batch) = (url.clone(), run3.clone());
            std::thread::spawn(move || {
                let mut pg = masqlog::sink::pg::Postgres::new(PgTarget::parse(&url).unwrap());
                pg.deliver(&batch, LONG)
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    assert_eq!(distinct(), "620 620 0");
    // A row without a seal next to sealed ones: kept once by its digest.
    let mut m = all[0].clone();
    let cut = m.windows(4).position(|w| w == b" w=g").unwrap();
    m.truncate(cut);
    pg.deliver(&[m.clone(), all[0].clone()], LONG).unwrap();
    pg.deliver(&[m, all[1].clone()], LONG).unwrap();
    assert_eq!(distinct(), "621 621 1");
}

/// `masqlog verify --key KEY --db URL` as the abuse desk runs it: the
/// key in a file of its own (removed on drop), the desk's role.
struct DeskVerify {
    key: tempfile::TempPath,
    url: String,
}

impl DeskVerify {
    fn new(c: &TempCluster, key: &masqlog_core::seal::VerifyKey) -> DeskVerify {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), key.to_text()).unwrap();
        DeskVerify {
            key: file.into_temp_path(),
            url: role_url(c, "desk"),
        }
    }

    /// Runs it against `url` (the desk's by default), with `extra`
    /// arguments.
    fn run_on(&self, url: &str, extra: &[&str]) -> crate::cli::Ran {
        let key = self.key.to_string_lossy();
        let mut args = vec!["verify", "--key", &key, "--db", url];
        args.extend_from_slice(extra);
        crate::cli::masqlog(&args)
    }

    fn run(&self, extra: &[&str]) -> crate::cli::Ran {
        self.run_on(&self.url, extra)
    }
}

#[test]
fn sealed_rows_verify_like_lines_and_a_changed_or_deleted_row_is_named() {
    use masqlog_core::seal::VerifyKey;
    let Some((c, _admin)) = setup() else { return };
    let t0 = Timestamp::now().secs - 60;
    let key = VerifyKey::generate("gw1", t0 - 3600, 86_400).unwrap();
    let desk = DeskVerify::new(&c, &key);
    let run1 = sealed_lines(&key, 1, 100, t0); // seq 1 ..= 200
    let mut pg = masqlog::sink::pg::Postgres::new(PgTarget::parse(&role_url(&c, "gw1")).unwrap());
    // The later half first, then the rest with a resend: the table's order
    // is not the sequence's.
    pg.deliver(&run1[100..], LONG).unwrap();
    pg.deliver(&run1[..120], LONG).unwrap();
    let ran = desk.run(&[]);
    assert_eq!(ran.code, Some(0), "{}", ran.all());
    assert!(
        ran.out
            .contains("gw1/masq1: intact: 200 records verify (run 1 seq 1-200)"),
        "{}",
        ran.all()
    );
    assert!(
        !ran.out.contains("after a later one") && !ran.out.contains("FAIL"),
        "{}",
        ran.all()
    );
    assert!(
        ran.out.contains("200 lines read; every chain is intact"),
        "{}",
        ran.all()
    );

    // Run 2 reached the database with a hole (seq 11-14 never sent).
    let run2 = sealed_lines(&key, 2, 10, t0);
    pg.deliver(&run2[..10], LONG).unwrap();
    pg.deliver(&run2[14..], LONG).unwrap();
    // Someone with rights on the table (here its owner) changes run 1's
    // seq 50 and deletes seq 120.
    c.psql(
        "masqlog",
        "UPDATE masqlog.flow_log SET line = replace(line, '10.99.1.2', '10.99.1.3') \
         WHERE seal_run = 1 AND seal_seq = 50",
    )
    .unwrap();
    c.psql(
        "masqlog",
        "DELETE FROM masqlog.flow_log WHERE seal_run = 1 AND seal_seq = 120",
    )
    .unwrap();
    let ran = desk.run(&[]);
    assert_eq!(ran.code, Some(1), "{}", ran.all());
    let all = ran.all();
    // The changed row, named by table, router and sequence number.
    assert!(all.contains("forged or altered lines: 1"), "{all}");
    assert!(
        all.contains("router gw1 seq 50: gw1/masq1 run 1 seq 50: the MAC does not verify"),
        "{all}"
    );
    assert!(all.contains("postgresql masqlog.flow_log_"), "{all}");
    // What the ledger says was committed and is gone, and what never came.
    assert!(
        all.contains("FAIL  run 1: seq 50 was committed to this database"),
        "{all}"
    );
    assert!(
        all.contains("FAIL  run 1: seq 120 was committed to this database"),
        "{all}"
    );
    assert!(
        all.contains("FAIL  run 2: seq 11-14 are missing (4 records)"),
        "{all}"
    );
    assert!(all.contains("gw1/masq1: BROKEN"), "{all}");
    // The same as JSON: a row is named by itself, not by file and line.
    let ran = desk.run(&["--json"]);
    assert_eq!(ran.code, Some(1), "{}", ran.all());
    assert!(ran.out.contains("\"row\""), "{}", ran.all());
    assert!(!ran.out.contains("\"line\":0"), "{}", ran.all());

    // A database without the schema is named, exit 2.
    c.psql("postgres", "CREATE DATABASE empty").unwrap();
    let empty = c.superuser_url_with_file("empty").unwrap();
    let ran = desk.run_on(&empty, &[]);
    assert_eq!(ran.code, Some(2), "{}", ran.all());
    assert!(ran.err.contains("masqlog db init"), "{}", ran.all());
}

#[test]
fn verify_db_after_retention_notes_the_cut_at_midnight_and_still_fails_a_deletion() {
    use masqlog_core::seal::VerifyKey;
    let Some((c, _admin)) = setup() else { return };
    let midnight = Timestamp::now().secs.div_euclid(86_400) * 86_400 - 86_400; // yesterday
    let key = VerifyKey::generate("gw1", midnight - 86_400, 86_400).unwrap();
    let desk = DeskVerify::new(&c, &key);
    // Run 1 crosses midnight: flow i starts at midnight - 3 + i and ends 5 s
    // later, so the start lines of flows 0-2 (seq 1, 3, 5) fall in the day
    // before, between end lines (seq 2, 4, 6) of the day after. Run 2 is
    // two hours into the day.
    let run1 = sealed_lines(&key, 1, 20, midnight - 3);
    let run2 = sealed_lines(&key, 2, 10, midnight + 7200);
    let mut pg = masqlog::sink::pg::Postgres::new(PgTarget::parse(&role_url(&c, "gw1")).unwrap());
    pg.deliver(&run1, LONG).unwrap();
    pg.deliver(&run2, LONG).unwrap();
    let ran = desk.run(&[]);
    assert_eq!(ran.code, Some(0), "{}", ran.all());
    // Retention drops the day before.
    c.psql(
        "masqlog",
        &format!(
            "SELECT masqlog.drop_partitions_before((to_timestamp({midnight}) AT TIME ZONE 'UTC')::date)"
        ),
    )
    .unwrap();
    assert_eq!(rows(&c, "WHERE seal_run = 1"), 37);
    let ran = desk.run(&[]);
    assert_eq!(ran.code, Some(0), "{}", ran.all());
    let all = ran.all();
    assert!(
        all.contains("gw1/masq1: intact: 57 records verify (run 1 seq 2-40, run 2 seq 1-20)"),
        "{all}"
    );
    assert!(all.contains("run 1: the logs begin at seq 2"), "{all}");
    for seq in [3, 5] {
        assert!(
            all.contains(&format!(
                "note  run 1: seq {seq} was committed to this database and is gone, next to the first minutes of the oldest partition masqlog.flow_log_"
            )),
            "{all}"
        );
    }
    assert!(all.contains("dropped by retention"), "{all}");
    // A row deleted two hours into the day is no retention's doing.
    c.psql(
        "masqlog",
        "DELETE FROM masqlog.flow_log WHERE seal_run = 2 AND seal_seq = 10",
    )
    .unwrap();
    let ran = desk.run(&[]);
    assert_eq!(ran.code, Some(1), "{}", ran.all());
    assert!(
        ran.out
            .contains("FAIL  run 2: seq 10 was committed to this database"),
        "{}",
        ran.all()
    );
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Tiny(std::path::PathBuf);

impl Drop for Tiny {
    fn drop(&mut self) {
        let _ = masqlog_lab::process::run_quiet(&["umount", "-l", &self.0.to_string_lossy()], None);
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The database's disk fills: the batch fails with the server's reason
/// (named as a full disk), records go to the spool, nothing is dropped;
/// once there is room again every record is there, once.
#[test]
fn a_full_disk_on_the_database_side_loses_nothing() {
    let Some((c, _admin)) = setup() else { return };
    let dir = c.dir().join("tiny");
    std::fs::create_dir(&dir).unwrap();
    let mounted = masqlog_lab::process::run_quiet(
        &[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=1m,mode=0700",
            "tmpfs",
            &dir.to_string_lossy(),
        ],
        None,
    );
    if !mounted.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    let tiny = Tiny(dir.clone());
    masqlog_lab::process::run(
        &[
            "chown",
            masqlog_lab::pgcluster::PG_USER,
            &dir.to_string_lossy(),
        ],
        None,
    )
    .unwrap();
    c.psql(
        "masqlog",
        &format!("CREATE TABLESPACE tiny LOCATION '{}'", dir.display()),
    )
    .unwrap();
    // Every partition of the table (and those made later) on the tiny disk.
    let parts = c
        .psql(
            "masqlog",
            "SELECT string_agg(format('ALTER TABLE masqlog.%I SET TABLESPACE tiny', c.relname), '; ') \
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'masqlog.flow_log'::regclass",
        )
        .unwrap();
    c.psql("masqlog", &parts).unwrap();
    c.psql(
        "masqlog",
        "ALTER TABLE masqlog.flow_log SET TABLESPACE tiny",
    )
    .unwrap();

    let spool = tempfile::tempdir().unwrap();
    let w = Writer::start(
        &config(role_url(&c, "gw1"), "gw1", spool.path()),
        Arc::new(NoWake),
        DropSource::Process,
    )
    .unwrap();
    let t0 = Timestamp::now().secs - 3600;
    let mut sent = 0u64;
    let notice = poll("the full disk named", LONG, || {
        for n in 0..200u16 {
            for rec in flow(1, (sent as u16).wrapping_add(n), t0) {
                assert!(w.submit(rec));
            }
        }
        sent += 200;
        Ok(w.take_notices()
            .into_iter()
            .find(|n| n.message.contains("out of room")))
    })
    .unwrap();
    assert!(notice.message.contains("53100"), "{}", notice.message);
    // Room again: the partitions move back to the main disk.
    let back = parts.replace("SET TABLESPACE tiny", "SET TABLESPACE pg_default");
    c.psql("masqlog", &back).unwrap();
    c.psql(
        "masqlog",
        "ALTER TABLE masqlog.flow_log SET TABLESPACE pg_default",
    )
    .unwrap();
    let want = i64::try_from(sent * 2).unwrap();
    poll("every row once there is room", LONG, || {
        Ok((rows(&c, "") >= want).then_some(()))
    })
    .unwrap();
    let s = w.stop(LONG);
    assert_eq!(s.dropped, 0, "{s:?}");
    assert_eq!(rows(&c, ""), want);
    assert_eq!(
        c.psql(
            "masqlog",
            "SELECT count(DISTINCT line) FROM masqlog.flow_log"
        )
        .unwrap(),
        want.to_string()
    );
    drop(tiny);
}

/// A cluster whose owner died without dropping it (a `kill -9` of the
/// test) is stopped and removed by the next start's sweep: its postmaster
/// is killed and its directory removed; the clusters of live owners (the
/// other tests of this process) are left alone.
#[test]
fn a_cluster_whose_owner_died_is_stopped_and_removed_by_the_next_run() {
    if !TempCluster::available() || masqlog_lab::process::effective_uid().ok() != Some(0) {
        eprintln!("skipped: needs root and PostgreSQL 15 (/usr/lib/postgresql/15/bin)");
        return;
    }
    let c = TempCluster::start().unwrap();
    let dir = c.dir().to_path_buf();
    let pid: u32 = std::fs::read_to_string(dir.join("data/postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    // Its owner is now a process that has ended.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    std::fs::write(dir.join("owner"), format!("{dead} 1\n")).unwrap();
    // As if the test had been killed: no drop.
    std::mem::forget(c);
    let live = TempCluster::start().unwrap();
    assert!(!dir.exists(), "{} is still there", dir.display());
    poll("the stale postmaster to end", LONG, || {
        Ok((!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(()))
    })
    .unwrap();
    // The live cluster was not touched by its own start's sweep.
    assert!(live.dir().exists());
    assert_eq!(live.psql("postgres", "SELECT 1").unwrap(), "1");
}
