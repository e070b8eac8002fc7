//! A hostile identd for the lab: a small TCP server that answers each IDENT
//! query as a [`Plan`] says for the query's client port (stall, answer late,
//! trickle, flood, send control bytes, close, reset, lie about the ports),
//! to show that none of it delays or breaks masqlog's lines.
//!
//! It must listen inside the client namespace, so it runs as a process of
//! its own there: any program that calls [`serve_from_env`] (the end-to-end
//! tests re-run their own test binary, see [`libtest_runner`]), started by
//! [`HostileIdentd::start`] with the plan in [`PLAN_ENV`]. Written in Rust
//! rather than socat and sh, because a reset needs `SO_LINGER` 0, exact
//! bytes (NUL, CR, invalid UTF-8) must reach the wire unchanged, and timing
//! must not depend on shell start-up.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::LabError;
use crate::ident::{IDENT_PORT, wait_listening};
use crate::process::Supervised;
use crate::topology::{Lab, Role};

/// The environment variable that carries the plan (its text form).
pub const PLAN_ENV: &str = "MASQLOG_HOSTILE_IDENTD";

/// The longest query line read (RFC 1413's 1000 characters).
const MAX_QUERY: usize = 1000;
/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 512;
/// How long a silent connection is held at most, and how long the server
/// waits for a query line.
const HOLD_MAX: Duration = Duration::from_secs(120);
const QUERY_WAIT: Duration = Duration::from_secs(10);

/// What the server does with one query, after reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Sends the query's port pair (`client,remote`), then these bytes,
    /// then closes: `Answer(b":USERID:UNIX:bob\r\n")`.
    Answer(Vec<u8>),
    /// Sends exactly these bytes (no port pair), then closes.
    Raw(Vec<u8>),
    /// Says nothing and keeps the connection open until the asker closes it.
    Silent,
    /// Like `Answer`, after a pause.
    Late { after: Duration, reply: Vec<u8> },
    /// Like `Answer`, one byte at a time with a pause before each.
    Trickle { every: Duration, reply: Vec<u8> },
    /// Sends this many bytes `x` without an end of line (until the asker
    /// stops reading).
    Flood(usize),
    /// Closes the connection without a word (FIN).
    Close,
    /// Resets the connection (`SO_LINGER` 0, then close: RST).
    Reset,
}

/// Why a plan's text is not one.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid hostile identd plan {token:?}: {why}")]
pub struct PlanError {
    pub token: String,
    pub why: &'static str,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl fmt::Display for Behaviour {
    /// `silent`, `close`, `reset`, `flood:N`, `answer:HEX`, `raw:HEX`,
    /// `late:MS:HEX`, `trickle:MS:HEX` (HEX: the bytes in hexadecimal).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Behaviour::Answer(b) => write!(f, "answer:{}", hex(b)),
            Behaviour::Raw(b) => write!(f, "raw:{}", hex(b)),
            Behaviour::Silent => f.write_str("silent"),
            Behaviour::Late { after, reply } => {
                write!(f, "late:{}:{}", after.as_millis(), hex(reply))
            }
            Behaviour::Trickle { every, reply } => {
                write!(f, "trickle:{}:{}", every.as_millis(), hex(reply))
            }
            Behaviour::Flood(n) => write!(f, "flood:{n}"),
            Behaviour::Close => f.write_str("close"),
            Behaviour::Reset => f.write_str("reset"),
        }
    }
}

impl FromStr for Behaviour {
    type Err = PlanError;

    fn from_str(s: &str) -> Result<Behaviour, PlanError> {
        let bad = |why| PlanError {
            token: s.to_string(),
            why,
        };
        let mut parts = s.split(':');
        let kind = parts.next().unwrap_or("");
        let rest: Vec<&str> = parts.collect();
        let bytes = |h: &str| unhex(h).ok_or_else(|| bad("bytes must be hexadecimal"));
        let ms = |m: &str| {
            m.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| bad("a pause must be milliseconds"))
        };
        match (kind, rest.as_slice()) {
            ("silent", []) => Ok(Behaviour::Silent),
            ("close", []) => Ok(Behaviour::Close),
            ("reset", []) => Ok(Behaviour::Reset),
            ("flood", [n]) => n
                .parse()
                .map(Behaviour::Flood)
                .map_err(|_| bad("flood needs a byte count")),
            ("answer", [h]) => Ok(Behaviour::Answer(bytes(h)?)),
            ("raw", [h]) => Ok(Behaviour::Raw(bytes(h)?)),
            ("late", [m, h]) => Ok(Behaviour::Late {
                after: ms(m)?,
                reply: bytes(h)?,
            }),
            ("trickle", [m, h]) => Ok(Behaviour::Trickle {
                every: ms(m)?,
                reply: bytes(h)?,
            }),
            _ => Err(bad("unknown behaviour or wrong number of fields")),
        }
    }
}

/// Which behaviour for which query: by the query's client port, with a
/// default for every other port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The port to listen on (113 unless the plugin's `ident_port` differs).
    pub port: u16,
    pub default: Behaviour,
    pub by_client_port: BTreeMap<u16, Behaviour>,
}

impl Plan {
    /// A plan that does `default` for every query, on port 113.
    pub fn new(default: Behaviour) -> Plan {
        Plan {
            port: IDENT_PORT,
            default,
            by_client_port: BTreeMap::new(),
        }
    }

    /// Adds a behaviour for queries about client port `port`.
    pub fn on(&mut self, port: u16, b: Behaviour) -> &mut Plan {
        self.by_client_port.insert(port, b);
        self
    }

    /// The behaviour for a query about client port `port`.
    pub fn for_port(&self, port: u16) -> &Behaviour {
        self.by_client_port.get(&port).unwrap_or(&self.default)
    }
}

impl fmt::Display for Plan {
    /// `port=113 default=silent 40001=reset 40002=answer:3a...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port={} default={}", self.port, self.default)?;
        for (p, b) in &self.by_client_port {
            write!(f, " {p}={b}")?;
        }
        Ok(())
    }
}

impl FromStr for Plan {
    type Err = PlanError;

    fn from_str(s: &str) -> Result<Plan, PlanError> {
        let mut plan = Plan::new(Behaviour::Silent);
        for tok in s.split_whitespace() {
            let bad = |why| PlanError {
                token: tok.to_string(),
                why,
            };
            let (k, v) = tok
                .split_once('=')
                .ok_or_else(|| bad("expected KEY=VALUE"))?;
            match k {
                "port" => plan.port = v.parse().map_err(|_| bad("port must be 1 to 65535"))?,
                "default" => plan.default = v.parse()?,
                _ => {
                    let p = k.parse().map_err(|_| bad("expected a client port"))?;
                    plan.by_client_port.insert(p, v.parse()?);
                }
            }
        }
        Ok(plan)
    }
}

/// Parses `client , remote` (RFC 1413 query, blanks allowed).
fn parse_query(line: &[u8]) -> Option<(u16, u16)> {
    let s = std::str::from_utf8(line).ok()?;
    let (a, b) = s.trim_end_matches(['\r', '\n']).split_once(',')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// Reads the query line (up to LF, at most [`MAX_QUERY`] bytes).
fn read_query(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    s.set_read_timeout(Some(QUERY_WAIT))?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < MAX_QUERY {
        match s.read(&mut byte)? {
            0 => break,
            _ if byte[0] == b'\n' => break,
            _ => line.push(byte[0]),
        }
    }
    Ok(line)
}

/// Runs `b` on one connection whose query was `(client, remote)`.
fn act(s: &mut TcpStream, b: &Behaviour, pair: (u16, u16)) -> io::Result<()> {
    let with_pair = |reply: &[u8]| {
        let mut out = format!("{},{}", pair.0, pair.1).into_bytes();
        out.extend_from_slice(reply);
        out
    };
    match b {
        Behaviour::Answer(reply) => s.write_all(&with_pair(reply)),
        Behaviour::Raw(bytes) => s.write_all(bytes),
        Behaviour::Silent => {
            // Hold until the asker closes (its deadline), or HOLD_MAX.
            let until = Instant::now() + HOLD_MAX;
            let mut buf = [0u8; 256];
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                s.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
                if s.read(&mut buf)? == 0 {
                    break;
                }
            }
            Ok(())
        }
        Behaviour::Late { after, reply } => {
            thread::sleep(*after);
            s.write_all(&with_pair(reply))
        }
        Behaviour::Trickle { every, reply } => {
            s.set_nodelay(true)?;
            for byte in with_pair(reply) {
                thread::sleep(*every);
                s.write_all(&[byte])?;
            }
            Ok(())
        }
        Behaviour::Flood(n) => {
            let chunk = vec![b'x'; 16 * 1024];
            let mut left = *n;
            while left > 0 {
                let k = left.min(chunk.len());
                s.write_all(&chunk[..k])?;
                left -= k;
            }
            Ok(())
        }
        Behaviour::Close => Ok(()),
        Behaviour::Reset => SockRef::from(&*s).set_linger(Some(Duration::ZERO)),
    }
}

fn handle(mut s: TcpStream, peer: SocketAddr, plan: &Plan) {
    let line = match read_query(&mut s) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hostile identd: {peer}: reading the query: {e}");
            return;
        }
    };
    let Some(pair) = parse_query(&line) else {
        eprintln!(
            "hostile identd: {peer}: not a query: \"{}\"",
            line.escape_ascii()
        );
        return;
    };
    let b = plan.for_port(pair.0);
    eprintln!("hostile identd: {peer} asked {},{}: {b}", pair.0, pair.1);
    if let Err(e) = act(&mut s, b, pair) {
        eprintln!("hostile identd: {peer}: {b}: {e}");
    }
    // Dropping the stream closes it (a RST after `Reset`).
}

fn listener(ip: IpAddr, port: u16) -> io::Result<TcpListener> {
    let addr = SocketAddr::new(ip, port);
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if ip.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(128)?;
    Ok(s.into())
}

fn accept_loop(l: TcpListener, plan: Arc<Plan>, active: Arc<AtomicUsize>) {
    loop {
        let (s, peer) = match l.accept() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("hostile identd: accept: {e}");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            eprintln!("hostile identd: {peer}: too many connections, closed");
            continue;
        }
        let (plan, active) = (plan.clone(), active.clone());
        let spawned = thread::Builder::new()
            .name("hostile-identd-conn".into())
            .spawn(move || {
                handle(s, peer, &plan);
                active.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            eprintln!("hostile identd: {peer}: cannot start a thread: {e}");
        }
    }
}

/// Serves `plan` on `0.0.0.0` and `[::]` (its port) forever, in this
/// process's network namespace. Returns only if it cannot listen.
pub fn serve(plan: Plan) -> io::Result<()> {
    let listeners = [
        listener(Ipv4Addr::UNSPECIFIED.into(), plan.port)?,
        listener(Ipv6Addr::UNSPECIFIED.into(), plan.port)?,
    ];
    eprintln!("hostile identd: listening on port {}: {plan}", plan.port);
    let plan = Arc::new(plan);
    let active = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = listeners
        .into_iter()
        .map(|l| {
            let (plan, active) = (plan.clone(), active.clone());
            thread::spawn(move || accept_loop(l, plan, active))
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

/// The entry point of the server process: when [`PLAN_ENV`] is set, serves
/// its plan forever (an error if the plan is bad or the port taken);
/// without it, returns `Ok(())` at once (so a test that hosts the server is
/// a no-op when run by itself).
pub fn serve_from_env() -> Result<(), String> {
    let Some(text) = std::env::var_os(PLAN_ENV) else {
        return Ok(());
    };
    let plan: Plan = text
        .to_str()
        .ok_or_else(|| format!("{PLAN_ENV} is not UTF-8"))?
        .parse()
        .map_err(|e: PlanError| e.to_string())?;
    serve(plan).map_err(|e| format!("hostile identd: cannot listen: {e}"))
}

/// The command that runs the server from a libtest binary (this process's
/// executable): `EXE --exact TEST --ignored --nocapture`, where `TEST` is
/// an `#[ignore]`d test that calls [`serve_from_env`].
pub fn libtest_runner(test: &str) -> Result<Vec<String>, LabError> {
    let exe = std::env::current_exe().map_err(|e| LabError::io("finding this executable", e))?;
    Ok(vec![
        exe.to_string_lossy().into_owned(),
        "--exact".into(),
        test.into(),
        "--ignored".into(),
        "--nocapture".into(),
    ])
}

/// The hostile identd process in the client namespace.
#[derive(Debug)]
pub struct HostileIdentd {
    proc: Supervised,
    pub plan: Plan,
}

impl HostileIdentd {
    /// Starts `runner` (a program that calls [`serve_from_env`]) in the
    /// client namespace with `plan`, and waits until it listens.
    pub fn start(lab: &Lab, runner: &[String], plan: &Plan) -> Result<HostileIdentd, LabError> {
        let env = format!("{PLAN_ENV}={plan}");
        let mut argv = vec!["env", env.as_str()];
        argv.extend(runner.iter().map(String::as_str));
        let name = "hostile-identd";
        let mut proc = lab.spawn(Some(Role::Client), name, &argv)?;
        wait_listening(lab, &mut proc, name, plan.port)?;
        Ok(HostileIdentd {
            proc,
            plan: plan.clone(),
        })
    }

    /// Its log: one line per query, with the behaviour it got.
    pub fn output(&self) -> String {
        self.proc.output()
    }

    /// Stops it: port 113 then refuses connections.
    pub fn stop(&mut self) -> Result<(), LabError> {
        self.proc.stop().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use masqlog_core::ident::{Mode, Outcome, Query, QueryConfig, query};

    fn every_behaviour() -> Vec<Behaviour> {
        vec![
            Behaviour::Answer(b":USERID:UNIX:bob\r\n".to_vec()),
            Behaviour::Raw(b"\x00\xff\r\n".to_vec()),
            Behaviour::Silent,
            Behaviour::Late {
                after: Duration::from_millis(1500),
                reply: b":x".to_vec(),
            },
            Behaviour::Trickle {
                every: Duration::from_millis(20),
                reply: Vec::new(),
            },
            Behaviour::Flood(1 << 20),
            Behaviour::Close,
            Behaviour::Reset,
        ]
    }

    #[test]
    fn plans_read_back_what_they_write() {
        let mut plan = Plan::new(Behaviour::Reset);
        for (i, b) in every_behaviour().into_iter().enumerate() {
            let s = b.to_string();
            assert_eq!(s.parse::<Behaviour>(), Ok(b.clone()), "{s}");
            plan.on(40000 + i as u16, b);
        }
        plan.port = 1113;
        let text = plan.to_string();
        assert!(text.starts_with("port=1113 default=reset 40000=answer:"));
        assert_eq!(text.parse::<Plan>(), Ok(plan.clone()));
        assert_eq!(plan.for_port(40002), &Behaviour::Silent);
        assert_eq!(plan.for_port(1), &Behaviour::Reset);
    }

    #[test]
    fn bad_plans_are_refused() {
        for bad in [
            "default=shout",
            "port=x",
            "40000",
            "x=silent",
            "1=answer:0",
            "1=answer:zz",
            "1=late:soon:00",
            "1=flood",
            "1=silent:1",
        ] {
            assert!(bad.parse::<Plan>().is_err(), "{bad}");
        }
        assert_eq!("".parse::<Plan>(), Ok(Plan::new(Behaviour::Silent)));
    }

    #[test]
    fn queries_are_read_like_rfc_1413() {
        assert_eq!(parse_query(b"40001, 8080\r"), Some((40001, 8080)));
        assert_eq!(parse_query(b" 1 ,2"), Some((1, 2)));
        assert_eq!(parse_query(b"1;2"), None);
        assert_eq!(parse_query(b"70000,2"), None);
    }

    /// The server on loopback, asked by the plugin's own query code: each
    /// behaviour ends as the outcome the end-to-end tests expect.
    #[test]
    fn behaviours_seen_by_the_plugins_query() {
        let l4 = listener(Ipv4Addr::LOCALHOST.into(), 0).unwrap();
        let port = l4.local_addr().unwrap().port();
        let mut plan = Plan::new(Behaviour::Silent);
        plan.port = port;
        // (client port 7 makes the query panic in test builds)
        let cases: Vec<(u16, Behaviour, &str)> = vec![
            (
                101,
                Behaviour::Answer(b":USERID:UNIX:bob\r\n".to_vec()),
                "user",
            ),
            (
                102,
                Behaviour::Raw(b"9,9:USERID:UNIX:mallory\r\n".to_vec()),
                "port pair mismatch: asked 102, 8080, answered 9, 9",
            ),
            (103, Behaviour::Silent, "timeout"),
            (
                104,
                Behaviour::Flood(1 << 20),
                "reply longer than 1000 bytes",
            ),
            (105, Behaviour::Close, "empty reply"),
            (106, Behaviour::Reset, "connection reset by the identd"),
            (
                107,
                Behaviour::Trickle {
                    every: Duration::from_millis(100),
                    reply: b":USERID:UNIX:slow\r\n".to_vec(),
                },
                "timeout",
            ),
        ];
        for (p, b, _) in &cases {
            plan.on(*p, b.clone());
        }
        let plan = Arc::new(plan);
        thread::spawn({
            let plan = plan.clone();
            move || accept_loop(l4, plan, Arc::new(AtomicUsize::new(0)))
        });
        let cfg = QueryConfig {
            mode: Mode::Plain { source: None },
            port,
            connect_timeout: Duration::from_secs(1),
            deadline: Duration::from_millis(700),
            max_reply: 1000,
        };
        let handles: Vec<_> = cases
            .into_iter()
            .map(|(p, _, want)| {
                let cfg = cfg.clone();
                thread::spawn(move || {
                    let q = Query {
                        ct_id: None,
                        client: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), p),
                        remote: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 8080),
                    };
                    let o = query(&q, &cfg);
                    let got = match &o {
                        Outcome::ProtocolError(m) => m.clone(),
                        other => other.token().to_string(),
                    };
                    assert_eq!(got, want, "client port {p}: {o:?}");
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
}
