//! Reading a rule file back: the header's parameters and every client's
//! block, from our own nft or iptables output, with the lookups both ways
//! (public address and port -> client; client -> public address and block).
//! A file we did not write is refused, not guessed at.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::PortblockError;
use super::clock;
use super::history::parse_rule_file_name;
use super::net::{Ipv4Net, PortRange, parse_prefix, parse_public};
use super::plan::{Block, Method, Params, check_interface, check_table};
use super::render::{GENERATED_AT, MAGIC};

/// The most bytes of a rule file we read (a plan of [`super::plan::MAX_CLIENTS`]
/// clients in iptables form is about 60 MB).
pub const MAX_RULE_FILE: u64 = 128 << 20;

/// One rule file, parsed: what was in force from `timestamp` on.
#[derive(Clone, Debug)]
pub struct RuleFile {
    pub path: PathBuf,
    /// From the file name `rules.<timestamp>.<method>`; for a file named
    /// otherwise, the generated-at time.
    pub timestamp: i64,
    /// The time in the generated-at line.
    pub generated_at: i64,
    pub params: Params,
    /// Every client's block, in file order.
    pub blocks: Vec<Block>,
    /// Indexes into `blocks` sorted by (public, lo).
    by_public: Vec<usize>,
    /// Indexes into `blocks` sorted by internal address.
    by_internal: Vec<usize>,
}

impl RuleFile {
    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<RuleFile, PortblockError> {
        let meta = fs::metadata(path).map_err(PortblockError::io("cannot read", path))?;
        if meta.len() > MAX_RULE_FILE {
            return Err(PortblockError::Foreign {
                path: path.into(),
                reason: format!(
                    "{} bytes is larger than any rule file masqlog writes",
                    meta.len()
                ),
            });
        }
        let bytes = fs::read(path).map_err(PortblockError::io("cannot read", path))?;
        let text = String::from_utf8(bytes).map_err(|_| PortblockError::Foreign {
            path: path.into(),
            reason: "it is not UTF-8 text".into(),
        })?;
        RuleFile::parse(path, &text)
    }

    /// Parses the text of a rule file; `path` names it in errors and gives
    /// the timestamp when it has the form `rules.<timestamp>.<method>`.
    pub fn parse(path: &Path, text: &str) -> Result<RuleFile, PortblockError> {
        let foreign = |reason: &str| PortblockError::Foreign {
            path: path.into(),
            reason: reason.into(),
        };
        let mut lines = text.lines().enumerate();
        let generated_at = match lines.next() {
            Some((_, l)) if l.starts_with(GENERATED_AT) => {
                clock::parse_time(&l[GENERATED_AT.len()..], None)
                    .map(|t| t.first().secs)
                    .map_err(|_| foreign("its generated-at line has no valid time"))?
            }
            _ => return Err(foreign("its first line is not masqlog's generated-at line")),
        };
        match lines.next() {
            Some((_, l)) if l == MAGIC => {}
            Some((_, l)) if l.starts_with("# masqlog-portblock/") => {
                return Err(foreign(&format!(
                    "format {:?} is not the one this masqlog reads ({MAGIC:?})",
                    &l[2..]
                )));
            }
            _ => {
                return Err(foreign(
                    "its second line is not the masqlog-portblock/1 marker",
                ));
            }
        }
        let mut hp = HeaderParser::default();
        let mut body_start = 2;
        for (i, line) in lines.by_ref() {
            let Some(kv) = line.strip_prefix("# ") else {
                body_start = i;
                break;
            };
            let Some((k, v)) = kv.split_once('=') else {
                body_start = i;
                break;
            };
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                body_start = i;
                break;
            }
            hp.set(k, v).map_err(|reason| PortblockError::Parse {
                path: path.into(),
                line: i + 1,
                reason,
            })?;
            body_start = i + 1;
        }
        let params = hp.finish().map_err(|reason| PortblockError::Parse {
            path: path.into(),
            line: body_start + 1,
            reason,
        })?;
        let body = text.lines().enumerate().skip(body_start);
        // Each block with the (0-based) line it was read from.
        let (blocks, lines): (Vec<Block>, Vec<usize>) = match params.method {
            Method::Nft => parse_nft(path, body)?,
            Method::Iptables => parse_iptables(path, body)?,
        }
        .into_iter()
        .unzip();
        if blocks.is_empty() {
            return Err(foreign("it holds no client block"));
        }
        let timestamp = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_rule_file_name)
            .map(|(t, _)| t)
            .unwrap_or(generated_at);
        let mut by_public: Vec<usize> = (0..blocks.len()).collect();
        by_public.sort_by_key(|&i| (blocks[i].public, blocks[i].lo));
        for w in by_public.windows(2) {
            let (a, b) = (&blocks[w[0]], &blocks[w[1]]);
            if a.public == b.public && a.hi >= b.lo {
                return Err(parse_err(
                    path,
                    lines[w[0]].max(lines[w[1]]),
                    format!(
                        "the blocks of {} and {} overlap on {} ({}-{} and {}-{}): \
                         a port would name two clients",
                        a.internal, b.internal, a.public, a.lo, a.hi, b.lo, b.hi
                    ),
                ));
            }
        }
        let mut by_internal: Vec<usize> = (0..blocks.len()).collect();
        by_internal.sort_by_key(|&i| blocks[i].internal);
        for w in by_internal.windows(2) {
            if blocks[w[0]].internal == blocks[w[1]].internal {
                return Err(parse_err(
                    path,
                    lines[w[0]].max(lines[w[1]]),
                    format!("{} has two blocks", blocks[w[0]].internal),
                ));
            }
        }
        Ok(RuleFile {
            path: path.into(),
            timestamp,
            generated_at,
            params,
            blocks,
            by_public,
            by_internal,
        })
    }

    /// The file name (`rules.1732390000.nft`).
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The client whose block holds `port` on `public` (TCP and UDP ports,
    /// and ICMP echo ids for nft rules), if any.
    pub fn owner_of(&self, public: Ipv4Addr, port: u16) -> Option<Ipv4Addr> {
        self.block_at(public, port).map(|b| b.internal)
    }

    /// The block (public address, first and last port) of `internal`.
    pub fn block_of(&self, internal: Ipv4Addr) -> Option<(Ipv4Addr, u16, u16)> {
        let i = self
            .by_internal
            .binary_search_by_key(&internal, |&i| self.blocks[i].internal)
            .ok()?;
        let b = &self.blocks[self.by_internal[i]];
        Some((b.public, b.lo, b.hi))
    }

    /// The whole block that holds `port` on `public`.
    pub fn block_at(&self, public: Ipv4Addr, port: u16) -> Option<&Block> {
        let n = self
            .by_public
            .partition_point(|&i| (self.blocks[i].public, self.blocks[i].lo) <= (public, port));
        let b = &self.blocks[*self.by_public.get(n.checked_sub(1)?)?];
        (b.public == public && b.contains(port)).then_some(b)
    }
}

/// Collects the `# key=value` header lines.
#[derive(Default)]
struct HeaderParser {
    method: Option<Method>,
    internal: Option<Vec<Ipv4Net>>,
    public: Option<Vec<Ipv4Addr>>,
    ports: Option<PortRange>,
    per_client: Option<u32>,
    include_first: Option<bool>,
    table: Option<String>,
    oif: Option<String>,
}

impl HeaderParser {
    fn set(&mut self, k: &str, v: &str) -> Result<(), String> {
        let dup = |k: &str| format!("the header gives {k} twice");
        macro_rules! once {
            ($field:expr, $val:expr) => {{
                if $field.is_some() {
                    return Err(dup(k));
                }
                $field = Some($val);
            }};
        }
        match k {
            "method" => once!(self.method, v.parse().map_err(|e| format!("{e}"))?),
            "internal" => once!(
                self.internal,
                v.split(',')
                    .map(|s| parse_prefix(s).map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?
            ),
            "public" => once!(
                self.public,
                v.split(',')
                    .map(|s| parse_public(s).map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?
            ),
            "ports" => once!(
                self.ports,
                v.parse().map_err(|e: PortblockError| e.to_string())?
            ),
            "per_client" => once!(
                self.per_client,
                v.parse::<u32>()
                    .ok()
                    .filter(|n| n.is_power_of_two())
                    .ok_or_else(|| format!("per_client={v} is not a power of two"))?
            ),
            "first_host" => once!(
                self.include_first,
                match v {
                    "included" => true,
                    "skipped" => false,
                    _ => return Err(format!("first_host={v}: expected included or skipped")),
                }
            ),
            "table" => {
                check_table(v).map_err(|e| e.to_string())?;
                once!(self.table, v.to_string())
            }
            "oif" => {
                check_interface(v).map_err(|e| e.to_string())?;
                once!(self.oif, v.to_string())
            }
            _ => return Err(format!("unknown header key {k:?}")),
        }
        Ok(())
    }

    fn finish(self) -> Result<Params, String> {
        let missing = |k: &str| format!("the header has no {k}= line");
        let method = self.method.ok_or_else(|| missing("method"))?;
        if method == Method::Nft && self.table.is_none() {
            return Err(missing("table"));
        }
        if method == Method::Iptables && self.table.is_some() {
            return Err("an iptables rule file with a table= line".into());
        }
        Ok(Params {
            method,
            internal: self.internal.ok_or_else(|| missing("internal"))?,
            public: self.public.ok_or_else(|| missing("public"))?,
            ports: self.ports.ok_or_else(|| missing("ports"))?,
            per_client: self.per_client.ok_or_else(|| missing("per_client"))?,
            include_first: self.include_first.ok_or_else(|| missing("first_host"))?,
            table: self.table,
            oif: self.oif,
        })
    }
}

fn parse_err(path: &Path, line: usize, reason: impl Into<String>) -> PortblockError {
    PortblockError::Parse {
        path: path.into(),
        line: line + 1,
        reason: reason.into(),
    }
}

/// `LO-HI` or `P`.
fn port_range(s: &str) -> Option<(u16, u16)> {
    let r: PortRange = s.parse().ok()?;
    Some((r.lo, r.hi))
}

/// The elements of the `blocks` map: `10.8.0.2 : 192.0.2.1 . 65280-65535`,
/// separated by commas, on one line or many.
fn parse_nft<'a>(
    path: &Path,
    body: impl Iterator<Item = (usize, &'a str)>,
) -> Result<Vec<(Block, usize)>, PortblockError> {
    let mut blocks = Vec::new();
    let mut in_elements = false;
    let mut seen_map = false;
    for (i, line) in body {
        let t = line.trim();
        if !in_elements {
            if t.starts_with("map ") && t.ends_with('{') {
                seen_map = true;
            }
            if let Some(rest) = t.strip_prefix("elements = {") {
                if !seen_map {
                    return Err(parse_err(path, i, "elements outside a map"));
                }
                in_elements = true;
                if parse_elements(path, i, rest, &mut blocks)? {
                    return Ok(blocks);
                }
            }
            continue;
        }
        if parse_elements(path, i, t, &mut blocks)? {
            return Ok(blocks);
        }
    }
    Err(PortblockError::Foreign {
        path: path.into(),
        reason: "it has no complete `elements = { ... }` list of blocks".into(),
    })
}

/// Parses the elements on one line; returns whether the list closed.
fn parse_elements(
    path: &Path,
    i: usize,
    text: &str,
    blocks: &mut Vec<(Block, usize)>,
) -> Result<bool, PortblockError> {
    let (items, closed) = match text.split_once('}') {
        Some((items, _)) => (items, true),
        None => (text, false),
    };
    for item in items.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let bad = || {
            parse_err(
                path,
                i,
                format!("{item:?} is not `CLIENT : PUBLIC . LO-HI`"),
            )
        };
        let (internal, data) = item.split_once(':').ok_or_else(bad)?;
        let (public, ports) = data.split_once(" . ").ok_or_else(bad)?;
        let internal: Ipv4Addr = internal.trim().parse().map_err(|_| bad())?;
        let public: Ipv4Addr = public.trim().parse().map_err(|_| bad())?;
        let (lo, hi) = port_range(ports.trim()).ok_or_else(bad)?;
        blocks.push((
            Block {
                internal,
                public,
                lo,
                hi,
            },
            i,
        ));
    }
    Ok(closed)
}

/// The SNAT rules: `-A POSTROUTING -s CLIENT [-o IF] -p tcp|udp -j SNAT
/// --to-source PUBLIC:LO-HI`, and `-p icmp ... --to-source PUBLIC`.
fn parse_iptables<'a>(
    path: &Path,
    body: impl Iterator<Item = (usize, &'a str)>,
) -> Result<Vec<(Block, usize)>, PortblockError> {
    // (block, line) per client, tcp and udp separately, then checked equal.
    let mut tcp: Vec<(Block, usize)> = Vec::new();
    let mut udp: Vec<(Block, usize)> = Vec::new();
    let mut icmp: Vec<(Ipv4Addr, Ipv4Addr, usize)> = Vec::new();
    let mut seen_nat = false;
    let mut committed = false;
    for (i, line) in body {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(':') {
            continue;
        }
        if t == "*nat" {
            seen_nat = true;
            continue;
        }
        if t == "COMMIT" {
            committed = true;
            continue;
        }
        if !seen_nat || committed {
            return Err(parse_err(
                path,
                i,
                "a line outside the *nat ... COMMIT table",
            ));
        }
        let words: Vec<&str> = t.split_whitespace().collect();
        let bad = |why: &str| parse_err(path, i, format!("{why}: {t:?}"));
        let mut src = None;
        let mut proto = None;
        let mut to = None;
        let mut target = None;
        let mut w = words.iter();
        if w.next() != Some(&"-A") || w.next() != Some(&"POSTROUTING") {
            return Err(bad("not an -A POSTROUTING rule"));
        }
        while let Some(opt) = w.next() {
            let val = w.next().ok_or_else(|| bad("an option without a value"))?;
            match *opt {
                "-s" => src = Some(*val),
                "-o" => {}
                "-p" => proto = Some(*val),
                "-j" => target = Some(*val),
                "--to-source" => to = Some(*val),
                _ => return Err(bad("an option masqlog does not write")),
            }
        }
        if target != Some("SNAT") {
            return Err(bad("not a SNAT rule"));
        }
        let src = src.ok_or_else(|| bad("no -s"))?;
        let internal: Ipv4Addr = src
            .strip_suffix("/32")
            .unwrap_or(src)
            .parse()
            .map_err(|_| bad("-s is not one IPv4 address"))?;
        let to = to.ok_or_else(|| bad("no --to-source"))?;
        match proto {
            Some(p @ ("tcp" | "udp")) => {
                let (public, ports) = to.split_once(':').ok_or_else(|| bad("no port range"))?;
                let public: Ipv4Addr = public.parse().map_err(|_| bad("a bad --to-source"))?;
                let (lo, hi) = port_range(ports).ok_or_else(|| bad("a bad port range"))?;
                let b = Block {
                    internal,
                    public,
                    lo,
                    hi,
                };
                if p == "tcp" { &mut tcp } else { &mut udp }.push((b, i));
            }
            Some("icmp") => {
                let public: Ipv4Addr = to.parse().map_err(|_| bad("a bad --to-source"))?;
                icmp.push((internal, public, i));
            }
            _ => return Err(bad("a protocol other than tcp, udp, icmp")),
        }
    }
    if !committed {
        return Err(PortblockError::Foreign {
            path: path.into(),
            reason: "it has no *nat table ending in COMMIT".into(),
        });
    }
    tcp.sort_by_key(|(b, _)| b.internal);
    udp.sort_by_key(|(b, _)| b.internal);
    icmp.sort_by_key(|(a, _, _)| *a);
    if tcp.len() != udp.len() || tcp.len() != icmp.len() {
        return Err(PortblockError::Foreign {
            path: path.into(),
            reason: format!(
                "{} tcp, {} udp and {} icmp rules: masqlog writes one of each per client",
                tcp.len(),
                udp.len(),
                icmp.len()
            ),
        });
    }
    for ((t, _), ((u, ul), (ia, ip, il))) in tcp.iter().zip(udp.iter().zip(&icmp)) {
        if t != u {
            return Err(parse_err(
                path,
                *ul,
                format!("the udp rule of {} differs from its tcp rule", u.internal),
            ));
        }
        if *ia != t.internal || *ip != t.public {
            return Err(parse_err(
                path,
                *il,
                format!("the icmp rule of {ia} does not match a tcp/udp block"),
            ));
        }
    }
    // Back to file order.
    tcp.sort_by_key(|(_, line)| *line);
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portblock::plan::{Plan, PlanInput};
    use crate::portblock::render::render;
    use crate::portblock::render::tests::small_plan;

    fn parse(name: &str, text: &str) -> Result<RuleFile, PortblockError> {
        RuleFile::parse(Path::new(name), text)
    }

    #[test]
    fn reads_back_what_render_writes() {
        for method in [Method::Nft, Method::Iptables] {
            for oif in [None, Some("wan0")] {
                let plan = small_plan(method, oif);
                let text = render(&plan, 1_732_390_000);
                let f = parse("/x/rules.1732390001.nft", &text).unwrap();
                assert_eq!(f.params, plan.params);
                assert_eq!(f.blocks, plan.blocks);
                assert_eq!(f.timestamp, 1_732_390_001);
                assert_eq!(f.generated_at, 1_732_390_000);
                assert_eq!(f.name(), "rules.1732390001.nft");
            }
        }
        // Not named rules.T.EXT: the generated-at time stands in.
        let text = render(&small_plan(Method::Nft, None), 1_732_390_000);
        assert_eq!(
            parse("/tmp/my.nft", &text).unwrap().timestamp,
            1_732_390_000
        );
    }

    #[test]
    fn lookups_both_ways() {
        let text = render(&small_plan(Method::Nft, None), 0);
        let f = parse("r", &text).unwrap();
        let p1: Ipv4Addr = "192.0.2.1".parse().unwrap();
        let p2: Ipv4Addr = "192.0.2.2".parse().unwrap();
        let c = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(f.owner_of(p1, 65535), Some(c("10.8.0.2")));
        assert_eq!(f.owner_of(p1, 65024), Some(c("10.8.0.2")));
        assert_eq!(f.owner_of(p1, 65023), Some(c("10.9.0.0")));
        assert_eq!(f.owner_of(p1, 64512), Some(c("10.9.0.0")));
        assert_eq!(f.owner_of(p1, 64511), None);
        assert_eq!(f.owner_of(p1, 1), None);
        assert_eq!(f.owner_of(p2, 65100), Some(c("10.9.0.1")));
        assert_eq!(f.owner_of(p2, 65000), None); // the second block is free
        assert_eq!(f.owner_of(c("192.0.2.3"), 65100), None);
        assert_eq!(f.owner_of(c("0.0.0.0"), 0), None);
        assert_eq!(f.block_of(c("10.9.0.1")), Some((p2, 65024, 65535)));
        assert_eq!(f.block_of(c("10.8.0.1")), None); // the gateway
        assert_eq!(f.block_of(c("10.8.0.3")), None); // broadcast
        // Every block round-trips.
        for b in &f.blocks {
            assert_eq!(f.owner_of(b.public, b.lo), Some(b.internal));
            assert_eq!(f.owner_of(b.public, b.hi), Some(b.internal));
            assert_eq!(f.block_of(b.internal), Some((b.public, b.lo, b.hi)));
        }
    }

    #[test]
    fn lookups_on_a_larger_plan() {
        let plan = Plan::new(&PlanInput {
            internal: vec!["10.8.0.0/22".parse().unwrap()],
            public: vec!["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()],
            ports: "1024-65535".parse().unwrap(),
            per_client: None,
            method: Method::Iptables,
            table: None,
            oif: None,
            include_first: false,
        })
        .unwrap();
        let f = parse("r", &render(&plan, 0)).unwrap();
        for b in &plan.blocks {
            let mid = b.lo + (b.hi - b.lo) / 2;
            assert_eq!(f.owner_of(b.public, mid), Some(b.internal));
        }
    }

    #[test]
    fn refuses_foreign_files() {
        let e = parse("/etc/nftables.conf", "#!/usr/sbin/nft -f\nflush ruleset\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a masqlog portblock rule file"), "{e}");
        let e = parse(
            "/etc/iptables/rules.v4",
            "# Generated by vpn-generate-natfw on x\n*nat\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a masqlog portblock rule file"), "{e}");
        let text = render(&small_plan(Method::Nft, None), 0);
        let e = parse("r", &text.replace("portblock/1", "portblock/2"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("portblock/2"), "{e}");
        let e = parse("r", &text.replace("# per_client=512\n", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("per_client"), "{e}");
        let e = parse("r", &text.replace("# ports=", "# colour=blue\n# ports="))
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour"), "{e}");
        let cut = &text[..text.find("elements").unwrap()];
        let e = parse("r", cut).unwrap_err().to_string();
        assert!(e.contains("elements"), "{e}");
    }

    #[test]
    fn refuses_ambiguous_blocks() {
        let text = render(&small_plan(Method::Nft, None), 0);
        // Two clients on the same block.
        let e = parse(
            "r",
            &text.replace("192.0.2.1 . 64512-65023", "192.0.2.1 . 65024-65535"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("overlap"), "{e}");
        let text = render(&small_plan(Method::Iptables, None), 0);
        let e = parse(
            "r",
            &text.replace(
                "-s 10.8.0.2 -p udp -j SNAT --to-source 192.0.2.1:65024-65535",
                "-s 10.8.0.2 -p udp -j SNAT --to-source 192.0.2.1:65000-65535",
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("differs"), "{e}");
        let e = parse("r", &text.replace("-j SNAT", "-j MASQUERADE"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a SNAT rule"), "{e}");
    }

    /// A hand-edited file whose blocks overlap, or that gives a client two
    /// blocks, is refused with the line of the later of the two.
    #[test]
    fn a_hand_edited_conflict_names_its_line() {
        let text = render(&small_plan(Method::Nft, None), 0);
        let line_of = |text: &str, needle: &str| {
            text.lines()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no {needle:?} in\n{text}"))
                + 1
        };
        let edited = text.replace("192.0.2.1 . 64512-65023", "192.0.2.1 . 65024-65535");
        let n = line_of(&edited, "10.9.0.0 : 192.0.2.1 . 65024-65535");
        assert_eq!(
            parse("r", &edited).unwrap_err().to_string(),
            format!(
                "r:{n}: the blocks of 10.8.0.2 and 10.9.0.0 overlap on 192.0.2.1 \
                 (65024-65535 and 65024-65535): a port would name two clients"
            )
        );
        let edited = text.replace("10.9.0.0 : 192.0.2.1", "10.8.0.2 : 192.0.2.1");
        let n = line_of(&edited, "10.8.0.2 : 192.0.2.1 . 64512-65023");
        assert_eq!(
            parse("r", &edited).unwrap_err().to_string(),
            format!("r:{n}: 10.8.0.2 has two blocks")
        );
    }

    #[test]
    fn accepts_single_line_elements_and_single_ports() {
        let text = render(&small_plan(Method::Nft, None), 0);
        let start = text.find("\t\telements = {").unwrap();
        let end = text[start..].find("\t\t}\n").unwrap() + start + 4;
        let one =
            "\t\telements = { 10.8.0.2 : 192.0.2.1 . 65535, 10.9.0.0 : 192.0.2.1 . 64512-65023 }\n";
        let text = format!("{}{one}{}", &text[..start], &text[end..]);
        let f = parse("r", &text).unwrap();
        assert_eq!(f.blocks.len(), 2);
        assert_eq!(f.block_of("10.8.0.2".parse().unwrap()).unwrap().1, 65535);
    }
}
