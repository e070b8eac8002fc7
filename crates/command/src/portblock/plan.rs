//! The plan: which internal address owns which block of ports on which
//! public address. Pure arithmetic from the operator's parameters; no I/O.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::PortblockError;
use super::net::{self, Ipv4Net, PortRange};

/// The nftables table the rules live in when `--table` is not given.
pub const DEFAULT_TABLE: &str = "masqlog_portblock";

/// The most client addresses one plan may hold. A /14 of clients is already
/// a 10 MB nft file and a 60 MB iptables file; past that, split the plan.
pub const MAX_CLIENTS: u64 = 1 << 18;

/// The largest block a plan may give: half of the port space.
pub const MAX_PER_CLIENT: u32 = 1 << 15;

/// Below this many ports per client, `plan` warns.
pub const SMALL_BLOCK: u32 = 64;

/// How the rules are loaded: the file format and the tool that reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// An nftables ruleset for `nft -f`: one table with a map keyed by
    /// source address.
    Nft,
    /// A complete `nat` table for `iptables-restore`, one SNAT rule per
    /// client and protocol (the eduVPN layout).
    Iptables,
}

impl Method {
    /// The name used in rule files, file names and the syslog record.
    pub fn name(self) -> &'static str {
        match self {
            Method::Nft => "nft",
            Method::Iptables => "iptables",
        }
    }

    /// The reload command used when `--reload-cmd` is not given; `{}` is the
    /// path of the rule file.
    pub fn default_reload_cmd(self) -> &'static str {
        match self {
            Method::Nft => "nft -f {}",
            Method::Iptables => "iptables-restore {}",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = PortblockError;

    fn from_str(s: &str) -> Result<Method, PortblockError> {
        match s {
            "nft" => Ok(Method::Nft),
            "iptables" => Ok(Method::Iptables),
            _ => Err(PortblockError::BadMethod { input: s.into() }),
        }
    }
}

/// What the operator asked for (`masqlog portblock plan` options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanInput {
    /// Internal prefixes, in the order given: clients are numbered through
    /// them in this order, so append new prefixes at the end to keep the
    /// blocks of existing clients.
    pub internal: Vec<Ipv4Net>,
    /// Public addresses, filled one after the other.
    pub public: Vec<Ipv4Addr>,
    /// The ports SNAT may use on every public address.
    pub ports: PortRange,
    /// Ports per client: a power of two; `None` for the largest that fits.
    pub per_client: Option<u32>,
    pub method: Method,
    /// nftables table name (nft only); `None` for [`DEFAULT_TABLE`].
    pub table: Option<String>,
    /// Translate only packets leaving through this interface.
    pub oif: Option<String>,
    /// Give the first host address of each prefix (the router, usually) a
    /// block too.
    pub include_first: bool,
}

/// The parameters a rule file records in its header: the input with the
/// block size resolved. Enough to render the same rules again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub method: Method,
    pub internal: Vec<Ipv4Net>,
    pub public: Vec<Ipv4Addr>,
    pub ports: PortRange,
    pub per_client: u32,
    pub include_first: bool,
    /// The nftables table (nft only).
    pub table: Option<String>,
    pub oif: Option<String>,
}

/// One client's block: `internal` is translated to `public` with source
/// ports (and ICMP echo ids, in nft rules) in `lo..=hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Block {
    pub internal: Ipv4Addr,
    pub public: Ipv4Addr,
    pub lo: u16,
    pub hi: u16,
}

impl Block {
    /// Whether the block holds `port`.
    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }

    pub fn range(&self) -> PortRange {
        PortRange {
            lo: self.lo,
            hi: self.hi,
        }
    }
}

/// A checked plan: every client address with its block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub params: Params,
    /// How many aligned blocks fit in the port range on one public address.
    pub blocks_per_public: u32,
    /// One per client, in client order (prefix order, then ascending).
    pub blocks: Vec<Block>,
}

/// How many `n`-aligned blocks of `n` ports lie wholly inside `ports`.
pub fn blocks_per_public(ports: PortRange, n: u32) -> u32 {
    let end = (u32::from(ports.hi) + 1) / n; // blocks k with (k+1)n-1 <= hi
    let start = u32::from(ports.lo).div_ceil(n); // first k with kn >= lo
    end.saturating_sub(start)
}

/// The `j`-th block (0 = highest) of `n` ports in `ports`, counting down
/// from the top as the eduVPN script does. `j < blocks_per_public(ports, n)`.
pub fn nth_block(ports: PortRange, n: u32, j: u32) -> (u16, u16) {
    let k = (u32::from(ports.hi) + 1) / n - 1 - j;
    let lo = k * n;
    (lo as u16, (lo + n - 1) as u16)
}

/// Checks an nftables identifier as we write it unquoted: a letter, then
/// letters, digits and `_`, at most 64 bytes.
pub fn check_table(name: &str) -> Result<(), PortblockError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphabetic()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PortblockError::BadTable { name: name.into() })
    }
}

/// Checks an interface name the way the kernel does (1..15 bytes, no `/`,
/// `:` or white space, not `.` or `..`), and refuses the quote, backslash
/// and `#` that would break our quoting.
pub fn check_interface(name: &str) -> Result<(), PortblockError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name.bytes().all(|b| {
            b.is_ascii_graphic() && !matches!(b, b'/' | b':' | b'"' | b'\\' | b'#' | b'\'')
        });
    if ok {
        Ok(())
    } else {
        Err(PortblockError::BadInterface { name: name.into() })
    }
}

impl Plan {
    /// Checks the input and gives every client address its block.
    ///
    /// Client `i` (numbered through the prefixes in order, skipping the
    /// addresses [`net::client_hosts`] skips) gets public address
    /// `public[i / B]` and the `(i % B)`-th block from the top of the range,
    /// where `B` is the number of `N`-aligned blocks of `N` ports in the
    /// range.
    pub fn new(input: &PlanInput) -> Result<Plan, PortblockError> {
        if input.internal.is_empty() {
            return Err(PortblockError::NoInternal);
        }
        if input.public.is_empty() {
            return Err(PortblockError::NoPublic);
        }
        for n in &input.internal {
            net::check_no_host_bits(n)?;
        }
        for (i, a) in input.internal.iter().enumerate() {
            for b in &input.internal[i + 1..] {
                if net::overlaps(a, b) {
                    return Err(PortblockError::Overlap {
                        a: a.to_string(),
                        b: b.to_string(),
                    });
                }
            }
        }
        for (i, a) in input.public.iter().enumerate() {
            if input.public[i + 1..].contains(a) {
                return Err(PortblockError::DuplicatePublic { addr: *a });
            }
        }
        let table = match (input.method, &input.table) {
            (Method::Nft, None) => Some(DEFAULT_TABLE.to_string()),
            (Method::Nft, Some(t)) => {
                check_table(t)?;
                Some(t.clone())
            }
            (Method::Iptables, None) => None,
            (Method::Iptables, Some(_)) => return Err(PortblockError::TableWithIptables),
        };
        if let Some(oif) = &input.oif {
            check_interface(oif)?;
        }
        let clients: u64 = input
            .internal
            .iter()
            .map(|n| net::client_count(n, input.include_first))
            .sum();
        if clients > MAX_CLIENTS {
            return Err(PortblockError::OverMaxClients {
                clients,
                max: MAX_CLIENTS,
            });
        }
        let publics = input.public.len() as u64;
        let fits = |n: u32| u64::from(blocks_per_public(input.ports, n)) * publics >= clients;
        let per_client = match input.per_client {
            Some(n) => {
                if n == 0 || !n.is_power_of_two() {
                    return Err(PortblockError::PerClientNotPowerOfTwo { per_client: n });
                }
                if n > MAX_PER_CLIENT || blocks_per_public(input.ports, n) == 0 {
                    return Err(PortblockError::PerClientTooLarge {
                        per_client: n,
                        ports: input.ports.to_string(),
                    });
                }
                if !fits(n) {
                    return Err(too_many(input, clients, n));
                }
                n
            }
            None => (0..=15)
                .rev()
                .map(|e| 1u32 << e)
                .find(|&n| fits(n))
                .ok_or_else(|| too_many(input, clients, 1))?,
        };
        let bpp = blocks_per_public(input.ports, per_client);
        let mut blocks = Vec::with_capacity(clients as usize);
        let hosts = input
            .internal
            .iter()
            .flat_map(|n| net::client_hosts(n, input.include_first));
        for (i, internal) in hosts.enumerate() {
            let i = i as u64;
            let public = input.public[(i / u64::from(bpp)) as usize];
            let (lo, hi) = nth_block(input.ports, per_client, (i % u64::from(bpp)) as u32);
            blocks.push(Block {
                internal,
                public,
                lo,
                hi,
            });
        }
        Ok(Plan {
            params: Params {
                method: input.method,
                internal: input.internal.clone(),
                public: input.public.clone(),
                ports: input.ports,
                per_client,
                include_first: input.include_first,
                table,
                oif: input.oif.clone(),
            },
            blocks_per_public: bpp,
            blocks,
        })
    }

    /// The plan a rule file's parameters describe.
    pub fn from_params(params: &Params) -> Result<Plan, PortblockError> {
        Plan::new(&PlanInput {
            internal: params.internal.clone(),
            public: params.public.clone(),
            ports: params.ports,
            per_client: Some(params.per_client),
            method: params.method,
            table: params.table.clone(),
            oif: params.oif.clone(),
            include_first: params.include_first,
        })
    }

    /// The lowest and highest port any block uses.
    pub fn used_span(&self) -> Option<PortRange> {
        let lo = self.blocks.iter().map(|b| b.lo).min()?;
        let hi = self.blocks.iter().map(|b| b.hi).max()?;
        Some(PortRange { lo, hi })
    }
}

/// The refusal for a plan with more clients than blocks, with what would
/// make it fit. `n` is the block size asked for, or 1 when none was.
fn too_many(input: &PlanInput, clients: u64, n: u32) -> PortblockError {
    let bpp = u64::from(blocks_per_public(input.ports, n));
    let publics = input.public.len() as u64;
    let ports = |n: u32| {
        if n == 1 {
            "1 port".to_string()
        } else {
            format!("{n} ports")
        }
    };
    let offer = match input.per_client {
        Some(_) => format!(
            "{} blocks of {} in {}",
            bpp * publics,
            ports(n),
            input.ports
        ),
        None => format!(
            "{} blocks in {}, even of {}",
            bpp * publics,
            input.ports,
            ports(n)
        ),
    };
    let mut hint = Vec::new();
    if input.per_client.is_some() {
        let largest_fit = (0..=15)
            .rev()
            .map(|e| 1u32 << e)
            .find(|&m| u64::from(blocks_per_public(input.ports, m)) * publics >= clients);
        if let Some(m) = largest_fit {
            hint.push(format!("--per-client {m} fits"));
        }
    }
    let mut sizes = vec![n];
    if input.per_client.is_none() && blocks_per_public(input.ports, 256) > 0 {
        sizes.push(256);
    }
    for m in sizes {
        let b = u64::from(blocks_per_public(input.ports, m));
        if b > 0 {
            hint.push(format!(
                "{} public addresses would fit blocks of {}",
                clients.div_ceil(b),
                ports(m)
            ));
        }
    }
    hint.push("or narrow --internal".into());
    PortblockError::TooManyClients {
        clients,
        publics: if publics == 1 {
            "1 public address offers".into()
        } else {
            format!("{publics} public addresses offer")
        },
        offer,
        hint: hint.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn input(internal: &[&str], public: &[&str], ports: &str) -> PlanInput {
        PlanInput {
            internal: internal
                .iter()
                .map(|s| net::parse_prefix(s).unwrap())
                .collect(),
            public: public.iter().map(|s| s.parse().unwrap()).collect(),
            ports: ports.parse().unwrap(),
            per_client: None,
            method: Method::Nft,
            table: None,
            oif: None,
            include_first: false,
        }
    }

    fn r(s: &str) -> PortRange {
        s.parse().unwrap()
    }

    #[test]
    fn block_counts_and_alignment() {
        assert_eq!(blocks_per_public(r("1280-65535"), 256), 251);
        assert_eq!(blocks_per_public(r("1024-65535"), 1024), 63);
        // Partial blocks at either end are not used.
        assert_eq!(blocks_per_public(r("1000-2100"), 256), 4); // 1024, 1280, 1536, 1792
        assert_eq!(blocks_per_public(r("1025-2047"), 256), 3); // 1280, 1536, 1792
        assert_eq!(blocks_per_public(r("1-65535"), 32768), 1);
        assert_eq!(blocks_per_public(r("1-65535"), 65536), 0);
        assert_eq!(blocks_per_public(r("5000-5100"), 256), 0);
        assert_eq!(blocks_per_public(r("1-65535"), 1), 65535);
        for n in [1u32, 2, 64, 256, 4096] {
            for j in 0..blocks_per_public(r("1280-60000"), n) {
                let (lo, hi) = nth_block(r("1280-60000"), n, j);
                assert_eq!(u32::from(lo) % n, 0);
                assert_eq!(u32::from(hi) - u32::from(lo) + 1, n);
                assert!(lo >= 1280 && hi <= 60000);
            }
        }
    }

    #[test]
    fn edu_vpn_example_blocks() {
        // The eduVPN "Traceable NAT" listing: 192.168.101.2 first, blocks of
        // 256 counting down from 65535 in 1280-65535.
        let mut i = input(&["192.168.101.0/25"], &["192.0.2.1"], "1280-65535");
        i.per_client = Some(256);
        let p = Plan::new(&i).unwrap();
        let got: Vec<String> = p.blocks[..5]
            .iter()
            .map(|b| format!("{} {}:{}-{}", b.internal, b.public, b.lo, b.hi))
            .collect();
        assert_eq!(
            got,
            [
                "192.168.101.2 192.0.2.1:65280-65535",
                "192.168.101.3 192.0.2.1:65024-65279",
                "192.168.101.4 192.0.2.1:64768-65023",
                "192.168.101.5 192.0.2.1:64512-64767",
                "192.168.101.6 192.0.2.1:64256-64511",
            ]
        );
        assert_eq!(p.blocks.len(), 125); // .2 .. .126
        assert_eq!(p.blocks_per_public, 251);
    }

    #[test]
    fn auto_block_size_is_the_largest_power_of_two_that_fits() {
        // 253 clients in 1280-65535 on one address: 256 gives 251 blocks,
        // 128 gives 502 (the eduVPN script also lands on 128 here).
        let p = Plan::new(&input(&["10.8.0.0/24"], &["192.0.2.1"], "1280-65535")).unwrap();
        assert_eq!(p.params.per_client, 128);
        assert_eq!(p.blocks.len(), 253);
        // Two public addresses: 256 fits.
        let p = Plan::new(&input(
            &["10.8.0.0/24"],
            &["192.0.2.1", "192.0.2.2"],
            "1280-65535",
        ))
        .unwrap();
        assert_eq!(p.params.per_client, 256);
        // One client: the largest aligned block inside the range.
        let p = Plan::new(&input(&["10.8.0.2/32"], &["192.0.2.1"], "1280-65535")).unwrap();
        assert_eq!(p.params.per_client, 32768);
        assert_eq!((p.blocks[0].lo, p.blocks[0].hi), (32768, 65535));
    }

    #[test]
    fn multiple_public_addresses_fill_one_after_the_other() {
        let mut i = input(&["10.8.0.0/29"], &["192.0.2.1", "192.0.2.2"], "64001-65535");
        i.per_client = Some(512);
        // 64001-65535 holds 512-blocks at 64512 and 65024: two per address;
        // the /29 has 5 clients (.2 .. .6): 2 + 2 + 1 > 4.
        let e = Plan::new(&i).unwrap_err().to_string();
        assert!(e.contains("5 client addresses"), "{e}");
        assert!(e.contains("3 public addresses"), "{e}");
        assert!(e.contains("--per-client 256 fits"), "{e}");
        i.internal = vec![
            "10.8.0.0/30".parse().unwrap(),
            "10.9.0.0/30".parse().unwrap(),
            "10.10.0.0/31".parse().unwrap(),
        ];
        let p = Plan::new(&i).unwrap();
        let got: Vec<String> = p
            .blocks
            .iter()
            .map(|b| format!("{} {}:{}-{}", b.internal, b.public, b.lo, b.hi))
            .collect();
        assert_eq!(
            got,
            [
                "10.8.0.2 192.0.2.1:65024-65535",
                "10.9.0.2 192.0.2.1:64512-65023",
                "10.10.0.0 192.0.2.2:65024-65535",
                "10.10.0.1 192.0.2.2:64512-65023",
            ]
        );
    }

    #[test]
    fn boundaries() {
        // Exactly full: 4 blocks of 16384 in 1-65535? No: 0-16383 is not
        // inside 1-65535, so 3 blocks.
        let mut i = input(
            &["10.0.0.0/30", "10.0.1.0/30", "10.0.2.0/30"],
            &["192.0.2.1"],
            "1-65535",
        );
        i.per_client = Some(16384);
        let p = Plan::new(&i).unwrap();
        assert_eq!(p.blocks.last().unwrap().lo, 16384);
        i.internal.push("10.0.3.0/30".parse().unwrap());
        assert!(Plan::new(&i).is_err());
        // The whole range as one block.
        let mut i = input(&["10.0.0.1/32"], &["192.0.2.1"], "32768-65535");
        i.per_client = Some(32768);
        assert_eq!(Plan::new(&i).unwrap().blocks[0].hi, 65535);
        // Blocks of one port.
        let mut i = input(&["10.0.0.0/24"], &["192.0.2.1"], "1024-1500");
        i.per_client = Some(1);
        let p = Plan::new(&i).unwrap();
        assert_eq!((p.blocks[0].lo, p.blocks[0].hi), (1500, 1500));
        assert_eq!(p.blocks[252].lo, 1500 - 252);
    }

    #[test]
    fn refusals() {
        let base = input(&["10.8.0.0/24"], &["192.0.2.1"], "1280-65535");
        let mut i = base.clone();
        i.per_client = Some(300);
        assert!(
            Plan::new(&i)
                .unwrap_err()
                .to_string()
                .contains("power of two")
        );
        i.per_client = Some(0);
        assert!(
            Plan::new(&i)
                .unwrap_err()
                .to_string()
                .contains("power of two")
        );
        i.per_client = Some(65536);
        assert!(Plan::new(&i).unwrap_err().to_string().contains("too large"));
        let mut i = input(&["10.8.0.0/24"], &["192.0.2.1"], "5000-5100");
        i.per_client = Some(256);
        assert!(Plan::new(&i).unwrap_err().to_string().contains("too large"));
        let i = input(
            &["10.8.0.0/16", "10.8.3.0/24"],
            &["192.0.2.1"],
            "1280-65535",
        );
        assert!(Plan::new(&i).unwrap_err().to_string().contains("overlap"));
        let i = input(&["10.8.0.0/24"], &["192.0.2.1", "192.0.2.1"], "1280-65535");
        assert!(Plan::new(&i).unwrap_err().to_string().contains("twice"));
        let i = input(&["10.0.0.0/8"], &["192.0.2.1"], "1280-65535");
        assert!(Plan::new(&i).unwrap_err().to_string().contains("at most"));
        // /16 on one address does not fit even with blocks of one port.
        let i = input(&["10.8.0.0/16"], &["192.0.2.1"], "1280-65535");
        let e = Plan::new(&i).unwrap_err().to_string();
        assert!(e.contains("65533 client addresses do not fit"), "{e}");
        assert!(
            e.contains("1 public address offers 64256 blocks in 1280-65535, even of 1 port"),
            "{e}"
        );
        assert!(
            e.contains("2 public addresses would fit blocks of 1 port"),
            "{e}"
        );
        assert!(
            e.contains("262 public addresses would fit blocks of 256 ports"),
            "{e}"
        );
        let mut i = base.clone();
        i.method = Method::Iptables;
        i.table = Some("x".into());
        assert!(Plan::new(&i).is_err());
        let mut i = base.clone();
        i.table = Some("bad name".into());
        assert!(Plan::new(&i).is_err());
        let mut i = base.clone();
        i.oif = Some("a\"b".into());
        assert!(Plan::new(&i).is_err());
        // A prefix made without net::parse_prefix may have host bits set.
        let mut i = base;
        i.internal = vec!["10.8.0.5/24".parse().unwrap()];
        assert_eq!(
            Plan::new(&i).unwrap_err().to_string(),
            "10.8.0.5/24 has host bits set: did you mean 10.8.0.0/24?"
        );
    }

    #[test]
    fn include_first_gives_the_router_address_a_block() {
        let mut i = input(&["10.8.0.0/29"], &["192.0.2.1"], "1280-65535");
        i.include_first = true;
        let p = Plan::new(&i).unwrap();
        assert_eq!(p.blocks[0].internal, Ipv4Addr::new(10, 8, 0, 1));
        assert_eq!(p.blocks.len(), 6);
    }
}
