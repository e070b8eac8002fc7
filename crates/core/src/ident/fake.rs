//! Fake identd servers on loopback, for the tests of `query` and `pool`: each
//! accepts any number of connections and runs one behaviour on each.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// What the server does with one accepted connection.
pub(crate) type Behaviour = Arc<dyn Fn(TcpStream, &State) + Send + Sync>;

/// What the server saw, for the tests to check.
#[derive(Default)]
pub(crate) struct State {
    queries: Mutex<Vec<Vec<u8>>>,
    peers: Mutex<Vec<IpAddr>>,
    written: AtomicUsize,
    accepted: AtomicUsize,
    finished: AtomicUsize,
}

pub(crate) struct FakeIdentd {
    port: u16,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeIdentd {
    /// A server on 127.0.0.1, on a port of the kernel's choice.
    pub(crate) fn start(b: Behaviour) -> FakeIdentd {
        Self::start_on(&[Ipv4Addr::LOCALHOST.into()], b).expect("listen on 127.0.0.1")
    }

    /// A server on [::1]; `None` if the machine has no IPv6 loopback.
    pub(crate) fn start_v6(b: Behaviour) -> Option<FakeIdentd> {
        Self::start_on(&[Ipv6Addr::LOCALHOST.into()], b)
    }

    /// One server listening on the same port on every address of `ips`
    /// (loopback addresses only).
    pub(crate) fn start_on(ips: &[IpAddr], b: Behaviour) -> Option<FakeIdentd> {
        assert!(
            ips.iter().all(IpAddr::is_loopback),
            "tests stay on loopback"
        );
        'attempt: for _ in 0..20 {
            let first = TcpListener::bind(SocketAddr::new(ips[0], 0)).ok()?;
            let port = first.local_addr().ok()?.port();
            let mut listeners = vec![first];
            for ip in &ips[1..] {
                match TcpListener::bind(SocketAddr::new(*ip, port)) {
                    Ok(l) => listeners.push(l),
                    Err(_) => continue 'attempt,
                }
            }
            for l in &listeners {
                l.set_nonblocking(true).ok()?;
            }
            let state = Arc::new(State::default());
            let stop = Arc::new(AtomicBool::new(false));
            let acceptor = {
                let (state, stop) = (state.clone(), stop.clone());
                thread::spawn(move || accept_loop(&listeners, &b, &state, &stop))
            };
            return Some(FakeIdentd {
                port,
                state,
                stop,
                acceptor: Some(acceptor),
            });
        }
        None
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The queries received, as sent (with their end of line).
    pub(crate) fn queries(&self) -> Vec<Vec<u8>> {
        self.state.queries.lock().clone()
    }

    /// The addresses the connections came from.
    pub(crate) fn peers(&self) -> Vec<IpAddr> {
        self.state.peers.lock().clone()
    }

    /// Bytes the server managed to write, over all connections.
    pub(crate) fn written(&self) -> usize {
        self.state.written.load(Ordering::SeqCst)
    }

    /// Waits until every accepted connection has been dealt with.
    pub(crate) fn wait_done(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            let accepted = self.state.accepted.load(Ordering::SeqCst);
            if accepted > 0 && self.state.finished.load(Ordering::SeqCst) == accepted {
                return true;
            }
            thread::sleep(Duration::from_millis(5));
        }
        false
    }
}

impl Drop for FakeIdentd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn accept_loop(listeners: &[TcpListener], b: &Behaviour, state: &Arc<State>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let mut idle = true;
        for l in listeners {
            if let Ok((s, peer)) = l.accept() {
                idle = false;
                state.peers.lock().push(peer.ip());
                state.accepted.fetch_add(1, Ordering::SeqCst);
                let (b, state) = (b.clone(), state.clone());
                thread::spawn(move || {
                    let _ = s.set_nonblocking(false);
                    // no behaviour may outlive the tests by much
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
                    b(s, &state);
                    state.finished.fetch_add(1, Ordering::SeqCst);
                });
            }
        }
        if idle {
            thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Reads the query line; returns it without its end of line.
fn read_query(s: &mut TcpStream, state: &State) -> Option<Vec<u8>> {
    let mut q = Vec::new();
    let mut byte = [0u8; 1];
    while q.len() < 200 {
        match s.read(&mut byte) {
            Ok(1) => {
                q.push(byte[0]);
                if byte[0] == b'\n' {
                    state.queries.lock().push(q.clone());
                    let line = q.strip_suffix(b"\n").unwrap_or(&q);
                    return Some(line.strip_suffix(b"\r").unwrap_or(line).to_vec());
                }
            }
            _ => return None,
        }
    }
    None
}

fn write(s: &mut TcpStream, state: &State, bytes: &[u8]) -> bool {
    match s.write_all(bytes) {
        Ok(()) => {
            state.written.fetch_add(bytes.len(), Ordering::SeqCst);
            true
        }
        Err(_) => false,
    }
}

/// Echoes the query's port pair, then writes `rest`, then closes.
pub(crate) fn answer(rest: &[u8]) -> Behaviour {
    let rest = rest.to_vec();
    Arc::new(move |mut s: TcpStream, state: &State| {
        if let Some(mut reply) = read_query(&mut s, state) {
            reply.extend_from_slice(&rest);
            write(&mut s, state, &reply);
        }
    })
}

/// Writes `bytes` exactly after reading the query, then closes.
pub(crate) fn raw(bytes: &[u8]) -> Behaviour {
    let bytes = bytes.to_vec();
    Arc::new(move |mut s: TcpStream, state: &State| {
        if read_query(&mut s, state).is_some() {
            write(&mut s, state, &bytes);
        }
    })
}

/// Reads the query and never answers; waits for the client to go away.
pub(crate) fn silent() -> Behaviour {
    Arc::new(|mut s: TcpStream, state: &State| {
        if read_query(&mut s, state).is_some() {
            let mut sink = [0u8; 64];
            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
        }
    })
}

/// Answers like [`answer`], but only after `delay`.
pub(crate) fn late(delay: Duration, rest: &[u8]) -> Behaviour {
    let rest = rest.to_vec();
    Arc::new(move |mut s: TcpStream, state: &State| {
        if let Some(mut reply) = read_query(&mut s, state) {
            thread::sleep(delay);
            reply.extend_from_slice(&rest);
            write(&mut s, state, &reply);
        }
    })
}

/// Answers like [`answer`], one byte every `interval`.
pub(crate) fn trickle(interval: Duration, rest: &[u8]) -> Behaviour {
    let rest = rest.to_vec();
    Arc::new(move |mut s: TcpStream, state: &State| {
        if let Some(mut reply) = read_query(&mut s, state) {
            reply.extend_from_slice(&rest);
            for b in reply {
                if !write(&mut s, state, &[b]) {
                    return;
                }
                thread::sleep(interval);
            }
        }
    })
}

/// Writes `n` bytes of `A` (no end of line) with a small send buffer, so
/// that what it could write shows how much the client read.
pub(crate) fn flood(n: usize) -> Behaviour {
    Arc::new(move |mut s: TcpStream, state: &State| {
        let _ = socket2::SockRef::from(&s).set_send_buffer_size(4096);
        if read_query(&mut s, state).is_some() {
            let chunk = [b'A'; 4096];
            let mut left = n;
            while left > 0 {
                let k = left.min(chunk.len());
                if !write(&mut s, state, &chunk[..k]) {
                    return;
                }
                left -= k;
            }
        }
    })
}

/// Reads the query and closes without a word.
pub(crate) fn close_after_query() -> Behaviour {
    Arc::new(|mut s: TcpStream, state: &State| {
        let _ = read_query(&mut s, state);
    })
}

/// Closes as soon as the connection is accepted.
pub(crate) fn close_at_once() -> Behaviour {
    Arc::new(|s: TcpStream, _: &State| drop(s))
}

fn reset(s: TcpStream) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}

/// Reads the query, then aborts the connection with a RST (SO_LINGER 0).
pub(crate) fn reset_after_query() -> Behaviour {
    Arc::new(|mut s: TcpStream, state: &State| {
        let _ = read_query(&mut s, state);
        reset(s);
    })
}

/// Aborts the connection with a RST as soon as it is accepted.
pub(crate) fn reset_at_once() -> Behaviour {
    Arc::new(|s: TcpStream, _: &State| reset(s))
}
