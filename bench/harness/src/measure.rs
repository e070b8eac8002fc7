//! What the bench reads from the kernel: a process's CPU time (all threads),
//! a thread's context switches and the process's peak memory from /proc, the
//! router's conntrack count, the server's packet counters.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use masqlog_lab::topology::SERVER_V4;
use masqlog_lab::{Lab, Role, process};

/// A process's CPU time at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpu {
    /// Time on a CPU of every live thread, nanoseconds (the first field of
    /// /proc/PID/task/TID/schedstat, user and system together).
    pub all_ns: u64,
    /// The same of the main thread alone (ulogd's own thread: netlink,
    /// every interp).
    pub main_ns: u64,
    /// utime and stime of the whole process, dead threads included, clock
    /// ticks (/proc/PID/stat fields 14 and 15).
    pub utime: u64,
    pub stime: u64,
    /// Live threads.
    pub threads: usize,
}

impl Cpu {
    /// The CPU time spent between `earlier` and `self`.
    pub fn since(&self, earlier: &Cpu) -> Cpu {
        Cpu {
            all_ns: self.all_ns.saturating_sub(earlier.all_ns),
            main_ns: self.main_ns.saturating_sub(earlier.main_ns),
            utime: self.utime.saturating_sub(earlier.utime),
            stime: self.stime.saturating_sub(earlier.stime),
            threads: self.threads,
        }
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn schedstat_ns(path: &Path) -> Result<u64> {
    read(path)?
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("{}: no run time", path.display()))
}

/// Reads the CPU time of process `pid`.
pub fn cpu(pid: u32) -> Result<Cpu> {
    let proc = Path::new("/proc").join(pid.to_string());
    let main_ns = schedstat_ns(&proc.join("schedstat"))?;
    let mut all_ns = 0;
    let mut threads = 0;
    for e in std::fs::read_dir(proc.join("task")).context("listing threads")? {
        let e = e?;
        // A thread may end between the listing and the read.
        if let Ok(ns) = schedstat_ns(&e.path().join("schedstat")) {
            all_ns += ns;
            threads += 1;
        }
    }
    let stat = read(&proc.join("stat"))?;
    // The command name may contain spaces: fields count from after ')'.
    let after = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("/proc/{pid}/stat: no ')'"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after ')': state is field 3, so utime (14) is index 11, stime index 12
    let num = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("/proc/{pid}/stat: field {} missing", i + 3))
    };
    Ok(Cpu {
        all_ns,
        main_ns,
        utime: num(11)?,
        stime: num(12)?,
        threads,
    })
}

/// Context switches of one thread (/proc/PID/task/TID/status): each is the
/// thread going off a CPU, so each is followed by a wake-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Switches {
    /// It waited (`voluntary_ctxt_switches`).
    pub voluntary: u64,
    /// It was preempted (`nonvoluntary_ctxt_switches`).
    pub involuntary: u64,
}

impl Switches {
    pub fn total(&self) -> u64 {
        self.voluntary + self.involuntary
    }

    /// The switches between `earlier` and `self`.
    pub fn since(&self, earlier: &Switches) -> Switches {
        Switches {
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
        }
    }
}

/// The thread of `pid` whose name (/proc/PID/task/TID/comm) is `name`.
pub fn thread_named(pid: u32, name: &str) -> Option<u32> {
    let task = Path::new("/proc").join(pid.to_string()).join("task");
    std::fs::read_dir(task).ok()?.flatten().find_map(|e| {
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (comm.trim_end() == name)
            .then(|| e.file_name().to_str()?.parse().ok())
            .flatten()
    })
}

/// The context switches of thread `tid` of `pid`.
pub fn switches(pid: u32, tid: u32) -> Result<Switches> {
    let path = Path::new("/proc")
        .join(pid.to_string())
        .join("task")
        .join(tid.to_string())
        .join("status");
    let status = read(&path)?;
    let field = |key: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow!("{}: no {key}", path.display()))
    };
    Ok(Switches {
        voluntary: field("voluntary_ctxt_switches:")?,
        involuntary: field("nonvoluntary_ctxt_switches:")?,
    })
}

/// Clock ticks per second (for utime and stime).
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// The peak resident set size of `pid` (VmHWM), KiB.
pub fn vm_hwm_kib(pid: u32) -> Result<u64> {
    let status = read(&Path::new("/proc").join(pid.to_string()).join("status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("/proc/{pid}/status has no VmHWM"))
}

/// The number of conntrack entries in the router's namespace.
pub fn conntrack_count(lab: &Lab) -> Result<u64> {
    let out = lab.exec(
        Some(Role::Router),
        &["cat", "/proc/sys/net/netfilter/nf_conntrack_count"],
    )?;
    out.trim()
        .parse()
        .with_context(|| format!("nf_conntrack_count: {out:?}"))
}

/// The router's conntrack entries of generated flows still in its table:
/// UDP to the server, or TCP to the server still in SYN_SENT (the remote
/// syslog connection and IDENT queries are not counted). Lists them
/// (`conntrack -L` with a filter), so call it when the table is small.
pub fn flow_entries(lab: &Lab, proto: &str) -> Result<u64> {
    let server = SERVER_V4.to_string();
    let mut argv = vec!["conntrack", "-L", "-p", proto, "-d", server.as_str()];
    if proto == "tcp" {
        argv.extend(["--state", "SYN_SENT"]);
    }
    let ns = lab.ns(Role::Router);
    let out = process::run_with(&argv, Some(&ns), None, Duration::from_secs(30))?;
    // "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown."
    let err = String::from_utf8_lossy(&out.stderr);
    err.split_once("): ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("conntrack -L said: {}", err.trim()))
}

/// The server's nftables table that counts and drops the generated flows
/// (netdev ingress of s-wan: before any stack processing).
pub const SERVER_TABLE: &str = "masqbench";

/// The lowest destination port of generated flows; everything else (the
/// remote syslog receiver on 10514) passes untouched.
pub const FIRST_FLOW_PORT: u16 = 20000;

/// Installs the counting table in the server namespace.
pub fn install_server_counters(lab: &Lab) -> Result<()> {
    let rules = format!(
        "table netdev {SERVER_TABLE} {{\n\
         \tcounter udp_flows {{ }}\n\
         \tcounter tcp_flows {{ }}\n\
         \tchain ingress {{\n\
         \t\ttype filter hook ingress device \"s-wan\" priority 0; policy accept;\n\
         \t\tip protocol udp udp dport >= {FIRST_FLOW_PORT} counter name \"udp_flows\" drop\n\
         \t\tip protocol tcp tcp dport >= {FIRST_FLOW_PORT} counter name \"tcp_flows\" drop\n\
         \t}}\n\
         }}\n"
    );
    let path = lab.path("server-counters.nft");
    std::fs::write(&path, rules).context("writing the server's nftables rules")?;
    lab.exec(Some(Role::Server), &["nft", "-f", &path.to_string_lossy()])?;
    Ok(())
}

/// Packets of `proto` ("udp", "tcp") that reached the server: flows that
/// passed the router's NAT.
pub fn server_packets(lab: &Lab, proto: &str) -> Result<u64> {
    let name = format!("{proto}_flows");
    let out = lab.exec(
        Some(Role::Server),
        &["nft", "list", "counter", "netdev", SERVER_TABLE, &name],
    )?;
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "packets" {
            return words
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow!("counter {name}: {out}"));
        }
    }
    Err(anyhow!("counter {name}: no packets in {out:?}"))
}

/// The 1-minute load average of the machine.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU time of every process on the machine, from /proc/stat: (busy, total)
/// jiffies, to tell how busy the machine was during a row.
pub fn machine_jiffies() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(line) = stat.lines().next() else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_and_memory_are_readable() {
        let me = std::process::id();
        let c = cpu(me).unwrap();
        assert!(c.threads >= 1);
        assert!(c.all_ns >= c.main_ns);
        assert!(vm_hwm_kib(me).unwrap() > 0);
    }

    #[test]
    fn a_named_thread_and_its_switches_are_found() {
        let me = std::process::id();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::Builder::new()
            .name("bench-probe".into())
            .spawn(move || rx.recv())
            .unwrap();
        let tid = (0..200)
            .find_map(|_| {
                std::thread::sleep(Duration::from_millis(5));
                thread_named(me, "bench-probe")
            })
            .expect("the named thread");
        let s = switches(me, tid).unwrap();
        assert!(s.total() >= 1, "it waited at least once: {s:?}");
        assert_eq!(thread_named(me, "no-such-thread"), None);
        tx.send(()).unwrap();
        t.join().unwrap().unwrap();
    }
}
