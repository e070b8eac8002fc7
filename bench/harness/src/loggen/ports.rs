//! The masquerade's port choice: a flow keeps its client's source port on
//! the public address when that port is free there, else it gets a random
//! free one in 1024-65535 (as Linux's NAT does when the source port is
//! taken). Stricter than Linux in one way: a public address and port carries
//! one flow at a time (Linux only needs the whole 5-tuple to be unique), so
//! that a report naming the endpoint and a time inside a flow has exactly
//! one answer.

use std::net::Ipv4Addr;

use super::rng::Rng;

/// The lowest port the masquerade remaps to.
const LOW: u16 = 1024;

pub struct Ports {
    public: Vec<Ipv4Addr>,
    /// Per public address and port: when (µs) its last flow ends; 0 never used.
    busy_until: Vec<i64>,
    /// Lines written per public address and port, for the ground truth.
    pub lines: Vec<u32>,
    /// Flows per public address and port.
    pub flows: Vec<u32>,
    pub remapped: u64,
}

/// A public endpoint handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    /// Index for [`Ports::lines`] and [`Ports::flows`].
    pub slot: usize,
    pub ip: Ipv4Addr,
    pub port: u16,
    /// When the previous flow on it ended (µs; 0 none).
    pub prev_end: i64,
}

impl Ports {
    pub fn new(public: Vec<Ipv4Addr>) -> Ports {
        let n = public.len() * 65536;
        Ports {
            public,
            busy_until: vec![0; n],
            lines: vec![0; n],
            flows: vec![0; n],
            remapped: 0,
        }
    }

    pub fn slot(&self, ip_idx: usize, port: u16) -> usize {
        ip_idx * 65536 + usize::from(port)
    }

    /// A public port on address `ip_idx` for a flow from client port `want`
    /// living `start..end` (µs); `None` when every port is busy.
    pub fn take(
        &mut self,
        ip_idx: usize,
        want: u16,
        start: i64,
        end: i64,
        rng: &mut Rng,
    ) -> Option<Taken> {
        let free = |p: u16, busy: &[i64]| busy[ip_idx * 65536 + usize::from(p)] <= start;
        let port = if want >= LOW && free(want, &self.busy_until) {
            want
        } else {
            self.remapped += 1;
            let tried = (0..64)
                .map(|_| rng.range(u64::from(LOW), 65535) as u16)
                .find(|&p| free(p, &self.busy_until));
            match tried {
                Some(p) => p,
                None => {
                    let from = rng.range(u64::from(LOW), 65535) as u16;
                    (from..=65535)
                        .chain(LOW..from)
                        .find(|&p| free(p, &self.busy_until))?
                }
            }
        };
        let slot = self.slot(ip_idx, port);
        let prev_end = self.busy_until[slot];
        self.busy_until[slot] = end;
        self.flows[slot] += 1;
        Some(Taken {
            slot,
            ip: self.public[ip_idx],
            port,
            prev_end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_client_port_when_free_and_never_shares_one() {
        let mut p = Ports::new(vec![Ipv4Addr::new(192, 0, 2, 1)]);
        let mut rng = Rng::new(3);
        let a = p.take(0, 40000, 0, 100, &mut rng).unwrap();
        assert_eq!(a.port, 40000);
        assert_eq!(a.prev_end, 0);
        let b = p.take(0, 40000, 50, 200, &mut rng).unwrap();
        assert_ne!(b.port, 40000);
        assert!(b.port >= LOW);
        let c = p.take(0, 40000, 100, 300, &mut rng).unwrap();
        assert_eq!((c.port, c.prev_end), (40000, 100));
        assert_eq!(p.flows[c.slot], 2);
        assert_eq!(p.remapped, 1);
    }

    #[test]
    fn reports_exhaustion() {
        let mut p = Ports::new(vec![Ipv4Addr::new(192, 0, 2, 1)]);
        let mut rng = Rng::new(3);
        for _ in LOW..=65535 {
            assert!(p.take(0, 1, 0, 10, &mut rng).is_some());
        }
        assert!(p.take(0, 1, 5, 10, &mut rng).is_none());
        assert!(p.take(0, 1, 10, 20, &mut rng).is_some());
    }
}
