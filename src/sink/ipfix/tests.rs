//! Tests of the IPFIX transport and of the writer with an IPFIX
//! destination: messages decoded by a small collector that reads the
//! templates off the wire (RFC 7011), sequence numbers, template refresh,
//! a collector that resets, the spool behind TCP, message size.

use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::sink::StopSignal;
use crate::sink::testutil::{TestWaker, free_tcp_addr, record, temp_dir, test_config, wait_until};
use crate::sink::{Writer, drops};
use masqlog_core::config::{Config, Destination, SpoolConfig};
use masqlog_core::ipfix::{Exporter, encode_record, ie};
use masqlog_core::record::{FlowRecord, Timestamp};

const LONG: Duration = Duration::from_secs(30);

/// One decoded IPFIX message.
#[derive(Debug)]
struct Msg {
    len: usize,
    sequence: u32,
    domain: u32,
    templates: Vec<u16>,
    /// (template id, flowId) of each data record.
    records: Vec<(u16, u64, Vec<u8>)>,
}

/// A collector's view: the templates it learnt, per session.
#[derive(Default)]
struct Collector {
    templates: HashMap<u16, Vec<(u16, u16, bool)>>,
}

impl Collector {
    /// Decodes one message; panics on anything malformed (a record
    /// without its template included).
    fn decode(&mut self, b: &[u8]) -> Msg {
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
        assert_eq!(u16_at(0), 10, "version");
        let len = usize::from(u16_at(2));
        assert_eq!(len, b.len(), "message length");
        let mut m = Msg {
            len,
            sequence: u32_at(8),
            domain: u32_at(12),
            templates: Vec::new(),
            records: Vec::new(),
        };
        let mut at = 16;
        while at < len {
            let (id, slen) = (u16_at(at), usize::from(u16_at(at + 2)));
            let end = at + slen;
            assert!(slen >= 4 && end <= len, "set length {slen}");
            let mut p = at + 4;
            if id == 2 {
                while p < end {
                    let (tid, n) = (u16_at(p), u16_at(p + 2));
                    p += 4;
                    let mut fields = Vec::new();
                    for _ in 0..n {
                        let (fid, flen) = (u16_at(p), u16_at(p + 2));
                        let pen = fid & 0x8000 != 0;
                        p += if pen { 8 } else { 4 };
                        fields.push((fid & 0x7fff, flen, pen));
                    }
                    self.templates.insert(tid, fields);
                    m.templates.push(tid);
                }
            } else {
                let fields = self
                    .templates
                    .get(&id)
                    .unwrap_or_else(|| panic!("data set {id} before its template"))
                    .clone();
                while p < end {
                    let start = p;
                    let mut flow_id = 0;
                    for (fid, flen, pen) in &fields {
                        let n = if *flen == 0xffff {
                            let first = usize::from(b[p]);
                            if first < 255 {
                                p += 1;
                                first
                            } else {
                                p += 3;
                                usize::from(u16_at(p - 2))
                            }
                        } else {
                            usize::from(*flen)
                        };
                        if *fid == ie::FLOW_ID && !pen {
                            flow_id = u64::from_be_bytes(b[p..p + 8].try_into().unwrap());
                        }
                        p += n;
                    }
                    m.records.push((id, flow_id, b[start..p].to_vec()));
                }
                assert_eq!(p, end, "records fill the set exactly");
            }
            at = end;
        }
        m
    }
}

/// Splits a TCP byte stream into whole IPFIX messages.
fn split_stream(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        if data.len() < len {
            break;
        }
        out.push(data[..len].to_vec());
        data = &data[len..];
    }
    out
}

fn encoded(id: u32, exp: &Exporter) -> Vec<u8> {
    let mut out = Vec::new();
    encode_record(&record(id), exp, Timestamp::now(), &mut out);
    out
}

fn ipfix_cfg(max: usize, refresh_msgs: u32) -> IpfixConfig {
    IpfixConfig {
        domain_id: 42,
        template_refresh: Duration::from_secs(3600),
        template_refresh_messages: refresh_msgs,
        max_message: max,
    }
}

fn send(t: &mut Ipfix, msgs: &[Vec<u8>]) -> Result<(), (usize, SendError)> {
    let stop = StopSignal::new();
    t.send_batch(
        msgs,
        &Limit {
            end: Instant::now() + Duration::from_secs(5),
            stop: &stop,
            yield_now: None,
        },
    )
}

fn recv_udp(rx: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 65_536];
    let n = rx.recv(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn udp_sequence_numbers_count_data_records_and_templates_are_refreshed() {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(LONG)).unwrap();
    let cfg = ipfix_cfg(1400, 3);
    let exp = Exporter {
        instance: 42,
        max_message: 1400,
    };
    let mut t = Ipfix::new(rx.local_addr().unwrap(), false, cfg);
    let mut c = Collector::default();
    let batch: Vec<Vec<u8>> = (1..=3).map(|i| encoded(i, &exp)).collect();
    send(&mut t, &batch).unwrap();
    let m = c.decode(&recv_udp(&rx));
    assert_eq!((m.sequence, m.domain), (0, 42));
    assert_eq!(m.templates, vec![258]); // IPv4 delete
    let flows: Vec<u64> = m.records.iter().map(|r| r.1).collect();
    assert_eq!(flows, vec![1, 2, 3]);
    // The next two messages: no templates, the sequence goes on.
    for (i, want) in [(4, 3), (5, 4)] {
        send(&mut t, &[encoded(i, &exp)]).unwrap();
        let m = c.decode(&recv_udp(&rx));
        assert_eq!(m.sequence, want);
        assert!(m.templates.is_empty(), "{m:?}");
    }
    // After 3 messages the templates in use go again.
    send(&mut t, &[encoded(6, &exp)]).unwrap();
    let m = c.decode(&recv_udp(&rx));
    assert_eq!(m.sequence, 5);
    assert_eq!(m.templates, vec![258]);
}

#[test]
fn a_batch_is_split_into_messages_of_at_most_the_maximum_and_never_splits_a_record() {
    let rx = UdpSocket::bind("[::1]:0").unwrap();
    rx.set_read_timeout(Some(LONG)).unwrap();
    let exp = Exporter {
        instance: 42,
        max_message: 300,
    };
    let mut t = Ipfix::new(rx.local_addr().unwrap(), false, ipfix_cfg(300, 0));
    let batch: Vec<Vec<u8>> = (0..20).map(|i| encoded(i, &exp)).collect();
    send(&mut t, &batch).unwrap();
    let mut c = Collector::default();
    let mut flows = Vec::new();
    let mut expect_seq = 0;
    while flows.len() < 20 {
        let m = c.decode(&recv_udp(&rx));
        assert!(m.len <= 300, "{}", m.len);
        assert_eq!(m.sequence, expect_seq);
        expect_seq += m.records.len() as u32;
        flows.extend(m.records.iter().map(|r| r.1));
    }
    assert_eq!(flows, (0..20).collect::<Vec<u64>>());
}

#[test]
fn a_long_user_name_is_cut_to_fit_a_small_message() {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(LONG)).unwrap();
    let exp = Exporter {
        instance: 1,
        max_message: 256,
    };
    let rec = FlowRecord {
        ident: Some(masqlog_core::record::IdentInfo {
            status: masqlog_core::record::IdentStatus::User,
            user: Some(vec![b'x'; 2000]),
            opsys: None,
            detail: None,
        }),
        ..record(9)
    };
    let mut e = Vec::new();
    encode_record(&rec, &exp, Timestamp::now(), &mut e);
    let mut t = Ipfix::new(rx.local_addr().unwrap(), false, ipfix_cfg(256, 0));
    send(&mut t, &[e]).unwrap();
    // The template goes alone first (the record fills a message by itself).
    let mut c = Collector::default();
    let mut got = Vec::new();
    while got.is_empty() {
        let m = c.decode(&recv_udp(&rx));
        assert!(m.len <= 256);
        got = m.records;
    }
    assert_eq!(got[0].0, 262);
    assert!(got[0].2.ends_with(b"..."));
}

/// A TCP collector that keeps every byte it got, connection by connection.
fn tcp_collector(l: TcpListener) -> Arc<parking_lot::Mutex<Vec<Vec<u8>>>> {
    let conns: Arc<parking_lot::Mutex<Vec<Vec<u8>>>> = Arc::default();
    let c = Arc::clone(&conns);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let i = {
                let mut g = c.lock();
                g.push(Vec::new());
                g.len() - 1
            };
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    c.lock()[i].extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    conns
}

#[test]
fn tcp_reconnect_starts_a_new_session_with_templates_and_sequence_zero() {
    let addr = free_tcp_addr();
    let exp = Exporter {
        instance: 42,
        max_message: 1400,
    };
    let mut t = Ipfix::new(addr, true, ipfix_cfg(1400, 0));
    // Collector down: a retry, nothing delivered.
    match send(&mut t, &[encoded(1, &exp)]) {
        Err((0, SendError::Retry(_))) => {}
        other => panic!("expected Retry, got {other:?}"),
    }
    // The collector comes up, takes two messages, then resets.
    let l = TcpListener::bind(addr).unwrap();
    let (mut conn, _) = {
        send(&mut t, &[encoded(1, &exp), encoded(2, &exp)]).unwrap();
        l.accept().unwrap()
    };
    send(&mut t, &[encoded(3, &exp)]).unwrap();
    let mut c = Collector::default();
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    conn.set_read_timeout(Some(LONG)).unwrap();
    while split_stream(&data).len() < 2 {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0);
        data.extend_from_slice(&buf[..n]);
    }
    let msgs: Vec<Msg> = split_stream(&data).iter().map(|m| c.decode(m)).collect();
    assert_eq!((msgs[0].sequence, msgs[1].sequence), (0, 2));
    assert_eq!(msgs[0].templates, vec![258]);
    assert!(msgs[1].templates.is_empty());
    // Reset: the next send notices the closed peer and reconnects.
    drop(conn);
    let conns = tcp_collector(l);
    send(&mut t, &[encoded(4, &exp)]).unwrap();
    assert!(wait_until(LONG, || conns
        .lock()
        .first()
        .is_some_and(|d| !split_stream(d).is_empty())));
    let mut fresh = Collector::default();
    let m = fresh.decode(&split_stream(&conns.lock()[0])[0]);
    assert_eq!(m.sequence, 0);
    assert_eq!(m.templates, vec![258]);
    assert_eq!(m.records[0].1, 4);
}

fn ipfix_config(dest: Destination) -> Config {
    Config {
        retry_interval: Duration::from_millis(10),
        ipfix: ipfix_cfg(1400, 0),
        ..test_config(dest)
    }
}

#[test]
fn writer_spools_behind_a_tcp_collector_that_is_down_and_replays_in_order() {
    let dir = temp_dir("ipfix-spool");
    let addr = free_tcp_addr();
    let cfg = Config {
        spool: Some(SpoolConfig {
            dir: dir.path().join("spool"),
            max_bytes: 1 << 20,
            sync: Duration::ZERO,
        }),
        ..ipfix_config(Destination::IpfixTcp(addr))
    };
    let w = Writer::start(
        &cfg,
        Arc::new(TestWaker::default()),
        drops::DropSource::Process,
    )
    .unwrap();
    for id in 0..300 {
        assert!(w.submit(record(id)));
    }
    assert!(
        wait_until(LONG, || w.stats().spooled == 300),
        "{:?}",
        w.stats()
    );
    let conns = tcp_collector(TcpListener::bind(addr).unwrap());
    for id in 300..310 {
        assert!(w.submit(record(id)));
    }
    let mut flows = Vec::new();
    assert!(wait_until(LONG, || {
        let mut c = Collector::default();
        flows = conns
            .lock()
            .iter()
            .flat_map(|d| split_stream(d))
            .flat_map(|m| c.decode(&m).records)
            .map(|r| r.1)
            .collect();
        flows.len() >= 310
    }));
    assert_eq!(flows, (0..310).collect::<Vec<u64>>());
    let s = w.stop(LONG);
    assert_eq!(
        (s.written, s.dropped, s.spooled, s.unacked),
        (310, 0, 0, 0),
        "{s:?}"
    );
}

#[test]
fn writer_over_udp_counts_records_as_unacknowledged_and_sends_no_gap_or_update() {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(LONG)).unwrap();
    let cfg = ipfix_config(Destination::IpfixUdp(rx.local_addr().unwrap()));
    let w = Writer::start(
        &cfg,
        Arc::new(TestWaker::default()),
        drops::DropSource::Process,
    )
    .unwrap();
    let update = FlowRecord {
        event: masqlog_core::record::Event::Update,
        ..record(99)
    };
    assert!(w.submit(update));
    for id in 0..5 {
        assert!(w.submit(record(id)));
    }
    let mut c = Collector::default();
    let mut flows = Vec::new();
    while flows.len() < 5 {
        let m = c.decode(&recv_udp(&rx));
        assert_eq!(m.domain, 42);
        flows.extend(m.records.iter().map(|r| r.1));
    }
    assert_eq!(flows, (0..5).collect::<Vec<u64>>());
    let s = w.stop(LONG);
    // The update is done with (written) but not sent (not unacked).
    assert_eq!(
        (s.written, s.unacked, s.dropped, s.waiting),
        (6, 5, 0, 0),
        "{s:?}"
    );
    assert!(s.to_string().ends_with(" unacked=5"), "{s}");
    let _: SocketAddr = rx.local_addr().unwrap();
}

#[test]
fn udp_templates_are_due_again_after_the_refresh_time() {
    let cfg = IpfixConfig {
        template_refresh: Duration::from_secs(60),
        ..ipfix_cfg(1400, 0)
    };
    let mut t = Ipfix::new("127.0.0.1:9".parse().unwrap(), false, cfg);
    let now = Instant::now();
    assert!(t.refresh_due(now), "never sent: due");
    t.refreshed = Some(now);
    t.messages_since = 1_000_000;
    // By messages only when ipfix_template_refresh_msgs is not 0.
    assert!(!t.refresh_due(now + Duration::from_secs(59)));
    assert!(t.refresh_due(now + Duration::from_secs(60)));
}
