//! Notices lost conntrack events: the drop counter of the instance's own
//! NFCT event socket in `/proc/net/netlink`. The kernel counts there every
//! event it could not queue because the socket's receive buffer was full,
//! the same overrun after which ulogd logs "We are losing events".
//!
//! Which socket is the instance's: ulogd configures and starts one stack
//! at a time, `configure` sink first and `start` source first. So the
//! NETLINK_NETFILTER sockets that subscribe to multicast groups (conntrack
//! events; NFLOG's and NFCT's dump sockets subscribe to none) and that
//! appeared between this instance's `configure` and its `start` belong to
//! its own stack's NFCT. Another instance's socket, or NFLOG's, is never
//! counted.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

/// `/proc/net/netlink`'s protocol number of NETLINK_NETFILTER.
const NETLINK_NETFILTER: &str = "12";

/// The inodes of the sockets in a process's fd directory (`/proc/PID/fd`).
pub fn socket_inodes(fd_dir: &Path) -> HashSet<u64> {
    let mut inodes = HashSet::new();
    let Ok(dir) = fs::read_dir(fd_dir) else {
        return inodes;
    };
    for entry in dir.flatten() {
        if let Ok(target) = fs::read_link(entry.path())
            && let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse().ok())
        {
            inodes.insert(inode);
        }
    }
    inodes
}

/// One NETLINK_NETFILTER socket of `/proc/net/netlink`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetfilterSocket {
    pub inode: u64,
    /// It subscribes to multicast groups (event sockets do).
    pub subscribed: bool,
    pub drops: u64,
}

/// The NETLINK_NETFILTER sockets of the text of `/proc/net/netlink`;
/// `None` when it is not that table.
pub fn netfilter_sockets(table: &str) -> Option<Vec<NetfilterSocket>> {
    let mut lines = table.lines();
    let head: Vec<&str> = lines.next()?.split_whitespace().collect();
    let col = |name: &str| head.iter().position(|h| *h == name);
    let (eth, groups, drops, inode) = (col("Eth")?, col("Groups")?, col("Drops")?, col("Inode")?);
    let mut found = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(eth) != Some(&NETLINK_NETFILTER) {
            continue;
        }
        let Some(ino) = f.get(inode).and_then(|v| v.parse::<u64>().ok()) else {
            continue;
        };
        found.push(NetfilterSocket {
            inode: ino,
            subscribed: f
                .get(groups)
                .and_then(|g| u64::from_str_radix(g, 16).ok())
                .is_some_and(|g| g != 0),
            drops: f.get(drops).and_then(|v| v.parse().ok()).unwrap_or(0),
        });
    }
    Some(found)
}

/// The sum of the `Drops` column over the NETLINK_NETFILTER sockets whose
/// inode is in `inodes`, from the text of `/proc/net/netlink`.
pub fn netfilter_drops(table: &str, inodes: &HashSet<u64>) -> Option<u64> {
    Some(
        netfilter_sockets(table)?
            .iter()
            .filter(|s| inodes.contains(&s.inode))
            .map(|s| s.drops)
            .sum(),
    )
}

/// This process's NETLINK_NETFILTER sockets now.
fn own_sockets() -> Vec<NetfilterSocket> {
    let Ok(table) = fs::read_to_string("/proc/self/net/netlink") else {
        return Vec::new();
    };
    let mine = socket_inodes(Path::new("/proc/self/fd"));
    netfilter_sockets(&table)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| mine.contains(&s.inode))
        .collect()
}

/// The process's NETLINK_NETFILTER sockets when the instance was
/// configured (before its stack's NFCT opened any).
#[derive(Clone, Debug, Default)]
pub struct Before(HashSet<u64>);

impl Before {
    /// Takes the snapshot (in `configure`).
    pub fn now() -> Self {
        Before(own_sockets().iter().map(|s| s.inode).collect())
    }
}

/// Whose drops an instance counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropSource {
    /// These event sockets (the instance's own stack's NFCT).
    Sockets(HashSet<u64>),
    /// Every event socket of the process: the own one could not be told
    /// apart (the reason is in the start notice).
    Process,
}

impl DropSource {
    /// The event sockets that appeared since `before` (in `start`, after
    /// the stack's NFCT started); `Process` when there is none, or more
    /// than one.
    pub fn since(before: &Before) -> Self {
        Self::pick(&before.0, &own_sockets())
    }

    fn pick(before: &HashSet<u64>, now: &[NetfilterSocket]) -> Self {
        let new: HashSet<u64> = now
            .iter()
            .filter(|s| s.subscribed && !before.contains(&s.inode))
            .map(|s| s.inode)
            .collect();
        if new.len() == 1 {
            DropSource::Sockets(new)
        } else {
            DropSource::Process
        }
    }

    /// The drops counted now; `None` when /proc cannot be read (no gap
    /// records then; the caller says so once).
    pub fn read(&self) -> Option<u64> {
        let table = fs::read_to_string("/proc/self/net/netlink").ok()?;
        match self {
            DropSource::Sockets(inodes) => netfilter_drops(&table, inodes),
            DropSource::Process => {
                let mine = socket_inodes(Path::new("/proc/self/fd"));
                Some(
                    netfilter_sockets(&table)?
                        .iter()
                        .filter(|s| s.subscribed && mine.contains(&s.inode))
                        .map(|s| s.drops)
                        .sum(),
                )
            }
        }
    }

    /// What the start notice says about it.
    pub fn describe(&self) -> String {
        match self {
            DropSource::Sockets(inodes) => {
                let mut v: Vec<_> = inodes.iter().collect();
                v.sort();
                format!(
                    "lost conntrack events are read from this stack's NFCT socket (inode {})",
                    v.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
                )
            }
            DropSource::Process => "lost conntrack events are read from every conntrack event socket of ulogd (this stack's own could not be told apart: is its source NFCT with events?)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
00000000db064d0b 12  12510      00000005 0        0        0     2        109      1490310
00000000a8b27be5 12  12477      00000000 0        0        0     2        0        1490256
000000004e584b6b 0   0          00000000 0        0        0     2        77       1490311
00000000c1f8e9a7 12  2532543852 00000005 0        0        0     2        150      1490257
00000000c1f8e9a8 12  2532543853 00000000 0        0        0     2        33       1490258
";

    #[test]
    fn only_the_given_netfilter_sockets_count() {
        let own: HashSet<u64> = [1490310, 1490311].into_iter().collect();
        assert_eq!(netfilter_drops(TABLE, &own), Some(109));
        let both: HashSet<u64> = [1490310, 1490257].into_iter().collect();
        assert_eq!(netfilter_drops(TABLE, &both), Some(259));
        assert_eq!(netfilter_drops(TABLE, &HashSet::new()), Some(0));
        assert_eq!(netfilter_drops("garbage", &own), None);
    }

    #[test]
    fn event_sockets_are_the_subscribed_ones() {
        let s = netfilter_sockets(TABLE).unwrap();
        let subscribed: Vec<u64> = s.iter().filter(|s| s.subscribed).map(|s| s.inode).collect();
        // NFLOG's socket (1490258) and a dump socket subscribe to nothing;
        // the routing socket (Eth 0) is no netfilter socket at all.
        assert_eq!(subscribed, [1490310, 1490257]);
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn the_instance_counts_the_event_socket_its_stack_opened() {
        let all = netfilter_sockets(TABLE).unwrap();
        // Configured while the first stack ran (its NFCT: 1490310, an
        // NFLOG: 1490258); then this stack's NFCT opened 1490257 and a
        // dump socket 1490256.
        let before: HashSet<u64> = [1490310, 1490258].into_iter().collect();
        let source = DropSource::pick(&before, &all);
        assert_eq!(source, DropSource::Sockets([1490257].into_iter().collect()));
        // Nothing new (a stack without NFCT events), or two: not told
        // apart.
        let everything: HashSet<u64> = all.iter().map(|s| s.inode).collect();
        assert_eq!(DropSource::pick(&everything, &all), DropSource::Process);
        assert_eq!(DropSource::pick(&HashSet::new(), &all), DropSource::Process);
    }

    #[test]
    fn this_process_can_be_read() {
        assert!(DropSource::Process.read().is_some());
        assert_eq!(DropSource::Sockets(HashSet::new()).read(), Some(0));
    }
}
