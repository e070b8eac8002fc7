//! The PostgreSQL destination against a real PostgreSQL 15 (a throwaway
//! cluster on a Unix socket): two writers into one database, an outage of
//! the database with a spool, no duplicates, `lookup --db`'s inputs, and
//! the refusals (wrong password, another schema version).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use masqlog::sink::{Level, Writer, drops::DropSource};
use masqlog_command::db;
use masqlog_command::lookup::{self, NoProgress, ScanOptions};
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
        let inputs = db::lookup_inputs(&mut client, &[&q]).unwrap();
        assert!(!inputs.is_empty());
        let scan = lookup::scan(
            &[&q],
            &inputs,
            ScanOptions {
                stdin: None,
                progress: &mut NoProgress,
                scan_all: false,
                keys: &[],
            },
        );
        let verdict = lookup::decide(&scan, &q);
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
