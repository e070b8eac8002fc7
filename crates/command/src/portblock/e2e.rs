//! End-to-end tests with the real `nft` and the kernel's NAT, each in network
//! namespaces of its own (created here, deleted on drop). Without root, `ip`
//! or `nft` they pass after printing why they did not run.

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::apply::{ApplyOptions, ApplyOutcome, apply};
use super::history::{self, CURRENT};
use super::plan::{Method, Plan, PlanInput};
use super::rulefile::RuleFile;
use super::syslog::SyslogTarget;
use super::testutil::temp_dir;

static SEQ: AtomicU32 = AtomicU32::new(0);

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Why these tests cannot run here, if they cannot.
fn skip_reason(extra: &[(&str, &str)]) -> Option<String> {
    match fs::metadata("/proc/self") {
        Ok(m) if m.uid() == 0 => {}
        _ => return Some("not root: network namespaces need CAP_SYS_ADMIN".into()),
    }
    for (cmd, arg) in [("ip", "-V"), ("nft", "--version")].iter().chain(extra) {
        if !have(cmd, arg) {
            return Some(format!("`{cmd}` is not installed"));
        }
    }
    None
}

macro_rules! skip_unless_able {
    ($($extra:expr),*) => {
        if let Some(why) = skip_reason(&[$($extra),*]) {
            eprintln!("skipped {}: {why}", module_path!());
            return;
        }
    };
}

/// A network namespace of our own, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!(
            "mlpb-{}-{}-{tag}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let out = run("ip", &["netns", "add", &name]);
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Netns { name }
    }

    /// Runs a command inside the namespace; panics when it fails.
    fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["netns", "exec", &self.name];
        full.extend_from_slice(args);
        let out = run("ip", &full);
        assert!(
            out.status.success(),
            "in {}: {args:?}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ruleset(&self) -> String {
        self.exec(&["nft", "list", "ruleset"])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

fn plan(internal: &str, public: &[&str], per_client: Option<u32>) -> Plan {
    Plan::new(&PlanInput {
        internal: vec![internal.parse().unwrap()],
        public: public.iter().map(|p| p.parse().unwrap()).collect(),
        ports: "1280-65535".parse().unwrap(),
        per_client,
        method: Method::Nft,
        table: None,
        oif: None,
        include_first: false,
    })
    .unwrap()
}

fn rule_files(dir: &Path) -> usize {
    history::list(dir).unwrap().len()
}

#[test]
fn apply_loads_the_map_into_a_namespace_and_rolls_back() {
    skip_unless_able!();
    let ns = Netns::new("apply");
    let tmp = temp_dir("e2e-apply");
    let state = tmp.path().join("state");
    let sock = tmp.path().join("log");
    let rx = UnixDatagram::bind(&sock).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut opts = ApplyOptions::new(&state);
    opts.reload_cmd = Some(format!("ip netns exec {} nft -f", ns.name));
    opts.syslog = Some(SyslogTarget::Unix(sock));
    let mut log = Vec::new();

    // 253 clients on one address: blocks of 128, the first at the top.
    let a = plan("10.8.0.0/24", &["192.0.2.1"], None);
    let out = apply(&a, &opts, &mut log).unwrap();
    assert!(
        matches!(out, ApplyOutcome::Applied { previous: None, .. }),
        "{out:?}"
    );
    let rs = ns.ruleset();
    assert!(rs.contains("map blocks"), "{rs}");
    assert!(rs.contains("10.8.0.2 : 192.0.2.1 . 65408-65535"), "{rs}");
    assert!(rs.contains("10.8.0.254 : 192.0.2.1 . "), "{rs}");
    assert!(rs.contains("snat ip to ip saddr map @blocks"), "{rs}");
    let mut buf = vec![0u8; 4096];
    let n = rx.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("ev=apply"));

    // The same plan: no new file.
    let out = apply(&a, &opts, &mut log).unwrap();
    assert!(matches!(out, ApplyOutcome::Unchanged { .. }), "{out:?}");
    assert_eq!(rule_files(&state), 1);

    // A changed plan: a second file, current follows, nft has the new map.
    let b = plan("10.8.0.0/24", &["192.0.2.1", "192.0.2.2"], Some(256));
    let out = apply(&b, &opts, &mut log).unwrap();
    let ApplyOutcome::Applied { file: b_file, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(rule_files(&state), 2);
    assert_eq!(fs::canonicalize(state.join(CURRENT)).unwrap(), b_file);
    let rs = ns.ruleset();
    assert!(rs.contains("10.8.0.2 : 192.0.2.1 . 65280-65535"), "{rs}");
    assert!(rs.contains("10.8.0.254 : 192.0.2.2 . "), "{rs}");
    assert!(
        !rs.contains("65408-65535"),
        "the table was replaced, not added to: {rs}"
    );

    // A reload that fails: current stays on the second file, whose rules
    // stay loaded.
    let mut bad = opts.clone();
    bad.reload_cmd = Some(format!(
        "ip netns exec {} nft -f /nonexistent/rules.nft #",
        ns.name
    ));
    let c = plan("10.8.0.0/24", &["192.0.2.1", "192.0.2.2"], Some(128));
    let e = apply(&c, &bad, &mut log).unwrap_err().to_string();
    assert!(e.contains("failed") && e.contains("still points to"), "{e}");
    assert_eq!(fs::canonicalize(state.join(CURRENT)).unwrap(), b_file);
    assert_eq!(rule_files(&state), 2);
    assert!(ns.ruleset().contains("10.8.0.2 : 192.0.2.1 . 65280-65535"));
    let log = String::from_utf8(log).unwrap();
    assert!(
        log.contains("No such file"),
        "nft's complaint is in the log: {log}"
    );
}

/// The kernel really translates each client into its own block: UDP flows
/// from two clients through a router namespace, each translated source
/// port looked up in the rule file.
#[test]
fn the_kernel_keeps_each_client_in_its_block() {
    skip_unless_able!(("socat", "-V"), ("conntrack", "--version"));
    let router = Netns::new("router");
    let client = Netns::new("client");
    let server = Netns::new("server");
    for (mine, peer, ns) in [("r0", "c0", &client), ("wan0", "s0", &server)] {
        let out = run(
            "ip",
            &[
                "-n",
                &router.name,
                "link",
                "add",
                mine,
                "type",
                "veth",
                "peer",
                "name",
                peer,
                "netns",
                &ns.name,
            ],
        );
        assert!(
            out.status.success(),
            "veth: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    router.exec(&["ip", "addr", "add", "10.8.0.1/24", "dev", "r0"]);
    router.exec(&["ip", "link", "set", "r0", "up"]);
    router.exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", "wan0"]);
    router.exec(&["ip", "link", "set", "wan0", "up"]);
    server.exec(&["ip", "addr", "add", "192.0.2.99/24", "dev", "s0"]);
    server.exec(&["ip", "link", "set", "s0", "up"]);
    router.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    client.exec(&["ip", "addr", "add", "10.8.0.2/24", "dev", "c0"]);
    client.exec(&["ip", "addr", "add", "10.8.0.3/24", "dev", "c0"]);
    client.exec(&["ip", "link", "set", "c0", "up"]);
    client.exec(&["ip", "route", "add", "default", "via", "10.8.0.1"]);

    let tmp = temp_dir("e2e-kernel");
    let mut opts = ApplyOptions::new(tmp.path().join("state"));
    opts.reload_cmd = Some(format!("ip netns exec {} nft -f", router.name));
    opts.syslog = None;
    let p = plan("10.8.0.0/29", &["192.0.2.1"], Some(256));
    let ApplyOutcome::Applied { file, .. } = apply(&p, &opts, &mut Vec::new()).unwrap() else {
        panic!()
    };
    let rules = RuleFile::read(&file).unwrap();

    // 20 UDP flows from each client to a remote port nobody answers: each
    // leaves a conntrack entry with its translation.
    for src in ["10.8.0.2", "10.8.0.3"] {
        let script = format!(
            "for i in $(seq 20); do echo x | socat -u - UDP4:192.0.2.99:9,bind={src}:$((40000 + i)); done"
        );
        client.exec(&["sh", "-c", &script]);
    }
    let table = router.exec(&["conntrack", "-L", "-p", "udp"]);
    let mut checked = 0;
    for line in table.lines() {
        // orig: src= dst= sport= dport=; reply: src= dst= sport= dport=
        let field = |key: &str, nth: usize| {
            line.split_whitespace()
                .filter_map(|w| w.strip_prefix(key))
                .nth(nth)
                .map(String::from)
        };
        let (Some(client_addr), Some(public), Some(port)) =
            (field("src=", 0), field("dst=", 1), field("dport=", 1))
        else {
            continue;
        };
        let client_addr: Ipv4Addr = client_addr.parse().unwrap();
        let public: Ipv4Addr = public.parse().unwrap();
        let port: u16 = port.parse().unwrap();
        assert_eq!(public, Ipv4Addr::new(192, 0, 2, 1), "{line}");
        assert_eq!(rules.owner_of(public, port), Some(client_addr), "{line}");
        checked += 1;
    }
    assert_eq!(checked, 40, "{table}");
}

#[test]
fn iptables_rules_load_with_iptables_restore() {
    skip_unless_able!(("iptables-restore", "--version"));
    let ns = Netns::new("ipt");
    let tmp = temp_dir("e2e-ipt");
    let mut opts = ApplyOptions::new(tmp.path().join("state"));
    opts.reload_cmd = Some(format!("ip netns exec {} iptables-restore", ns.name));
    opts.syslog = None;
    let mut input = PlanInput {
        internal: vec!["192.168.101.0/25".parse().unwrap()],
        public: vec!["192.0.2.1".parse().unwrap()],
        ports: "1280-65535".parse().unwrap(),
        per_client: Some(256),
        method: Method::Iptables,
        table: None,
        oif: Some("wan0".into()),
        include_first: false,
    };
    let p = Plan::new(&input).unwrap();
    let ApplyOutcome::Applied { file, .. } = apply(&p, &opts, &mut Vec::new()).unwrap() else {
        panic!()
    };
    let saved = ns.exec(&["iptables-save", "-t", "nat"]);
    for line in [
        "-A POSTROUTING -s 192.168.101.2/32 -o wan0 -p tcp -j SNAT --to-source 192.0.2.1:65280-65535",
        "-A POSTROUTING -s 192.168.101.3/32 -o wan0 -p udp -j SNAT --to-source 192.0.2.1:65024-65279",
        "-A POSTROUTING -s 192.168.101.6/32 -o wan0 -p icmp -j SNAT --to-source 192.0.2.1",
    ] {
        assert!(saved.contains(line), "{line} not in {saved}");
    }
    let f = RuleFile::read(&file).unwrap();
    assert_eq!(
        f.owner_of(Ipv4Addr::new(192, 0, 2, 1), 65100),
        Some(Ipv4Addr::new(192, 168, 101, 3))
    );
    // A second apply replaces the nat table rather than adding to it.
    input.per_client = Some(128);
    apply(&Plan::new(&input).unwrap(), &opts, &mut Vec::new()).unwrap();
    let saved = ns.exec(&["iptables-save", "-t", "nat"]);
    assert_eq!(saved.matches("-A POSTROUTING").count(), 125 * 3, "{saved}");
    assert!(
        saved.contains("--to-source 192.0.2.1:65408-65535"),
        "{saved}"
    );
}

/// Every shape of plan we render passes `nft -c` (and loads) in a namespace.
#[test]
fn rendered_variants_pass_nft_check() {
    skip_unless_able!();
    let ns = Netns::new("check");
    let tmp = temp_dir("e2e-check");
    let base = PlanInput {
        internal: vec!["10.8.0.0/29".parse().unwrap()],
        public: vec!["192.0.2.1".parse().unwrap()],
        ports: "1024-65535".parse().unwrap(),
        per_client: None,
        method: Method::Nft,
        table: None,
        oif: None,
        include_first: false,
    };
    let mut variants = vec![base.clone()];
    let mut v = base.clone();
    v.oif = Some("wan0.100".into());
    v.table = Some("pb_Custom_1".into());
    variants.push(v);
    let mut v = base.clone();
    v.per_client = Some(1);
    v.ports = "1024-1100".parse().unwrap();
    v.include_first = true;
    variants.push(v);
    let mut v = base;
    v.internal = vec![
        "10.8.0.0/30".parse().unwrap(),
        "10.9.0.7/32".parse().unwrap(),
        "10.10.0.0/31".parse().unwrap(),
    ];
    v.public = vec![
        "192.0.2.1".parse().unwrap(),
        "198.51.100.7".parse().unwrap(),
    ];
    v.ports = "59904-60415".parse().unwrap();
    v.per_client = Some(256);
    variants.push(v);
    for (i, input) in variants.iter().enumerate() {
        let text = super::render::render(&Plan::new(input).unwrap(), 1_732_390_000);
        let path = tmp.path().join(format!("v{i}.nft"));
        fs::write(&path, &text).unwrap();
        let p = path.to_str().unwrap();
        ns.exec(&["nft", "-c", "-f", p]);
        ns.exec(&["nft", "-f", p]);
        ns.exec(&["nft", "-f", p]); // loading twice replaces, never fails
    }
    let rs = ns.ruleset();
    assert!(rs.contains("table ip pb_Custom_1"), "{rs}");
    assert!(
        rs.contains(
            "oifname \"wan0.100\" meta l4proto { tcp, udp } snat ip to ip saddr map @blocks"
        ),
        "{rs}"
    );
    assert!(rs.contains("10.9.0.7 : 192.0.2.1 . 59904-60159"), "{rs}");
    assert!(
        rs.contains("10.10.0.1 : 198.51.100.7 . 59904-60159"),
        "{rs}"
    );
}
