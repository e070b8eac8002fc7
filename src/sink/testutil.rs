//! Test helpers for the sink: receivers on loopback and Unix sockets in a
//! temporary directory, a counting waker, records and a stand-in format.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use tempfile::TempDir;

use super::{FormatFn, Waker};
use masqlog_core::config::{Config, Destination, SealConfig, SealMode};
use masqlog_core::format::Header;
use masqlog_core::record::FlowRecord;

/// Counts wakes.
#[derive(Default)]
pub struct TestWaker(AtomicUsize);

impl TestWaker {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Waker for TestWaker {
    fn wake(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A fresh directory under the system's temp dir, named after the test
/// (`masqlog-NAME-XXXXXX`), removed when the guard drops.
pub fn temp_dir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("masqlog-{name}-"))
        .tempdir()
        .unwrap()
}

/// Polls `cond` until it holds or `limit` passed.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A flow record whose conntrack id is `id` (the format tests' TCP end
/// record).
pub fn record(id: u32) -> FlowRecord {
    FlowRecord {
        id: Some(id),
        ..masqlog_core::format::testutil::tcp_end()
    }
}

/// A stand-in for `write_syslog`: `<PRI>HOST APP[PID]: id=N`, HOST `-`
/// when the header has none.
pub fn id_format() -> FormatFn {
    Box::new(|_, hdr: &Header<'_>, rec: &FlowRecord, out: &mut Vec<u8>| {
        out.extend_from_slice(
            format!(
                "<{}>{} {}[{}]: id={}",
                hdr.pri,
                hdr.hostname.unwrap_or("-"),
                hdr.app,
                hdr.pid,
                rec.id.unwrap_or(0)
            )
            .as_bytes(),
        );
        0
    })
}

/// The conntrack id in a message written by `id_format`.
pub fn id_of(msg: &[u8]) -> u32 {
    let s = std::str::from_utf8(msg).unwrap();
    s.rsplit_once("id=").unwrap().1.parse().unwrap()
}

/// A config for tests: short timeouts, no periodic statistics.
pub fn test_config(destination: Destination) -> Config {
    Config {
        destination,
        queue_size: 1024,
        stats_interval: None,
        send_timeout: Duration::from_millis(200),
        retry_interval: Duration::from_millis(20),
        hostname: Some("gw1".into()),
        spool: None,
        seal: SealConfig {
            mode: SealMode::Off,
            ..Config::default().seal
        },
        ..Config::default()
    }
}

/// Splits RFC 6587 octet-counted frames; `Err` on anything malformed or a
/// truncated last frame.
pub fn parse_frames(mut data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut frames = Vec::new();
    while !data.is_empty() {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or("no space after the length")?;
        let len_text = std::str::from_utf8(&data[..sp]).map_err(|e| e.to_string())?;
        if len_text.is_empty() || !len_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("bad length {len_text:?}"));
        }
        let len: usize = len_text.parse().map_err(|e| format!("{e}"))?;
        let body = &data[sp + 1..];
        if body.len() < len {
            return Err(format!("truncated frame: {} of {len} bytes", body.len()));
        }
        frames.push(body[..len].to_vec());
        data = &body[len..];
    }
    Ok(frames)
}

/// Datagrams received on a Unix socket in a temp dir.
pub struct UnixReceiver {
    pub sock: UnixDatagram,
    pub path: PathBuf,
}

impl UnixReceiver {
    pub fn bind(path: PathBuf) -> UnixReceiver {
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        UnixReceiver { sock, path }
    }

    /// Receives datagrams until `n` arrived or `limit` passed.
    pub fn recv_n(&self, n: usize, limit: Duration) -> Vec<Vec<u8>> {
        let end = Instant::now() + limit;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        while got.len() < n && Instant::now() < end {
            if let Ok(len) = self.sock.recv(&mut buf) {
                got.push(buf[..len].to_vec());
            }
        }
        got
    }
}

impl Drop for UnixReceiver {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A syslog-over-TCP receiver on loopback: accepts connections one at a
/// time, parses octet-counted frames and hands them over. Dropping it (or
/// `dying_after`) closes the listener and the connection, as a crashing
/// receiver would.
pub struct TcpReceiver {
    pub addr: SocketAddr,
    frames: Receiver<Vec<u8>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpReceiver {
    pub fn bind(addr: SocketAddr) -> TcpReceiver {
        Self::start(TcpListener::bind(addr).unwrap(), None)
    }

    /// A receiver that dies by itself after reading `n` frames, leaving
    /// unread data behind (the kernel answers with RST).
    pub fn dying_after(addr: SocketAddr, n: usize) -> TcpReceiver {
        Self::start(TcpListener::bind(addr).unwrap(), Some(n))
    }

    fn start(listener: TcpListener, die_after: Option<usize>) -> TcpReceiver {
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let (tx, rx) = unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || serve(listener, tx, flag, die_after));
        TcpReceiver {
            addr,
            frames: rx,
            stop,
            thread: Some(thread),
        }
    }

    /// Frames received so far.
    pub fn frames(&self) -> Vec<Vec<u8>> {
        self.frames.try_iter().collect()
    }

    /// Waits until the receiver thread ended (after `dying_after`).
    pub fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for TcpReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    listener: TcpListener,
    tx: Sender<Vec<u8>>,
    stop: Arc<AtomicBool>,
    die_after: Option<usize>,
) {
    let mut seen = 0;
    while !stop.load(Ordering::SeqCst) {
        let conn = match listener.accept() {
            Ok((conn, _)) => conn,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            Err(e) => panic!("accept: {e}"),
        };
        if read_frames(conn, &tx, &stop, die_after, &mut seen) {
            return;
        }
    }
}

/// Reads frames until EOF or stop; `true` when the receiver must die.
fn read_frames(
    mut conn: TcpStream,
    tx: &Sender<Vec<u8>>,
    stop: &AtomicBool,
    die_after: Option<usize>,
    seen: &mut usize,
) -> bool {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        match conn.read(&mut buf) {
            Ok(0) => {
                // EOF: a frame cut short by a failed sender is dropped, as
                // a real receiver would.
                return false;
            }
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(_) => return false,
        }
        // Take every complete frame out of `pending`.
        while let Some(sp) = pending.iter().position(|&b| b == b' ') {
            let len: usize = std::str::from_utf8(&pending[..sp])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| {
                    panic!("bad frame start {:?}", String::from_utf8_lossy(&pending))
                });
            if pending.len() < sp + 1 + len {
                break;
            }
            let frame = pending[sp + 1..sp + 1 + len].to_vec();
            pending.drain(..sp + 1 + len);
            let _ = tx.send(frame);
            *seen += 1;
            if die_after.is_some_and(|n| *seen >= n) {
                return true;
            }
        }
    }
}

/// A loopback address with a port nobody listens on (yet).
pub fn free_tcp_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A tmpfs of `kib` KiB mounted on a fresh directory, to run a disk full;
/// unmounted when dropped. `None` when mounting is not allowed (not root).
pub struct TinyDisk {
    dir: TempDir,
}

impl TinyDisk {
    pub fn mount(name: &str, kib: u32) -> Option<TinyDisk> {
        let dir = temp_dir(name);
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k,mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(TinyDisk { dir })
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
