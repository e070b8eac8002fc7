//! Notices lost conntrack events: the drop counter of this process's
//! NETLINK_NETFILTER sockets (ulogd's NFCT input) in `/proc/net/netlink`.
//! The kernel counts there every event it could not queue because the
//! socket's receive buffer was full, the same overrun after which ulogd
//! logs "We are losing events".

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

/// The sum of the `Drops` column over the NETLINK_NETFILTER sockets whose
/// inode is in `inodes`, from the text of `/proc/net/netlink`.
pub fn netfilter_drops(table: &str, inodes: &HashSet<u64>) -> Option<u64> {
    let mut lines = table.lines();
    let head: Vec<&str> = lines.next()?.split_whitespace().collect();
    let col = |name: &str| head.iter().position(|h| *h == name);
    let (eth, drops, inode) = (col("Eth")?, col("Drops")?, col("Inode")?);
    let mut sum = 0u64;
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(eth) != Some(&NETLINK_NETFILTER) {
            continue;
        }
        let Some(ino) = f.get(inode).and_then(|v| v.parse::<u64>().ok()) else {
            continue;
        };
        if inodes.contains(&ino) {
            sum += f
                .get(drops)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Some(sum)
}

/// This process's NETLINK_NETFILTER drops now; `None` when /proc cannot be
/// read (no gap records then; the caller says so once).
pub(super) fn read_drops() -> Option<u64> {
    let table = fs::read_to_string("/proc/self/net/netlink").ok()?;
    netfilter_drops(&table, &socket_inodes(Path::new("/proc/self/fd")))
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
";

    #[test]
    fn only_own_netfilter_sockets_count() {
        let own: HashSet<u64> = [1490310, 1490311].into_iter().collect();
        assert_eq!(netfilter_drops(TABLE, &own), Some(109));
        let both: HashSet<u64> = [1490310, 1490257].into_iter().collect();
        assert_eq!(netfilter_drops(TABLE, &both), Some(259));
        assert_eq!(netfilter_drops(TABLE, &HashSet::new()), Some(0));
        assert_eq!(netfilter_drops("garbage", &own), None);
    }

    #[test]
    fn this_process_can_be_read() {
        assert!(read_drops().is_some());
    }
}
