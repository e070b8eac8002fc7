//! Rendering a plan as a rule file: the header (generated-at line, then the
//! parameters, one `# key=value` a line) and an nftables ruleset or an
//! iptables-restore `nat` table. A pure function of the plan and a time.

use std::fmt::Write as _;

use super::clock;
use super::plan::{Method, Params, Plan};

/// Starts the first line of every rule file; the time follows.
pub const GENERATED_AT: &str = "# masqlog portblock rules generated at ";

/// The second line of every rule file: names the format and its version.
pub const MAGIC: &str = "# masqlog-portblock/1";

/// The name of the nftables map (and the chain is `postrouting`).
pub const MAP_NAME: &str = "blocks";

/// The text of a rule file for `plan`, generated at `generated_at` (UNIX
/// seconds).
pub fn render(plan: &Plan, generated_at: i64) -> String {
    let mut out = String::with_capacity(1024 + plan.blocks.len() * 48);
    out.push_str(GENERATED_AT);
    out.push_str(&clock::rfc3339(generated_at));
    out.push('\n');
    out.push_str(MAGIC);
    out.push('\n');
    write_params(&plan.params, &mut out);
    let p = &plan.params;
    let _ = writeln!(
        out,
        "#\n# {} client{}; {} blocks of {} ports per public address.",
        plan.blocks.len(),
        if plan.blocks.len() == 1 { "" } else { "s" },
        plan.blocks_per_public,
        p.per_client
    );
    match p.method {
        Method::Nft => out.push_str(
            "# Each client address owns one block on one public address: its TCP and UDP\n\
             # source ports and ICMP echo ids are translated into that block only.\n",
        ),
        Method::Iptables => out.push_str(
            "# Each client address owns one block on one public address: its TCP and UDP\n\
             # source ports are translated into that block only; its ICMP goes out from\n\
             # the same public address (iptables cannot map ICMP ids to a range).\n",
        ),
    }
    out.push_str(
        "# Who was PUBLIC:PORT at time T: take the rule file with the highest timestamp\n\
         # <= T and find the block that holds PORT on PUBLIC, or run\n\
         #   masqlog portblock test --state-dir DIR --at T --public PUBLIC:PORT\n",
    );
    match p.method {
        Method::Nft => render_nft(plan, &mut out),
        Method::Iptables => render_iptables(plan, &mut out),
    }
    out
}

/// The `# key=value` lines, in a fixed order.
fn write_params(p: &Params, out: &mut String) {
    let _ = writeln!(out, "# method={}", p.method);
    let internal: Vec<String> = p.internal.iter().map(|n| n.to_string()).collect();
    let _ = writeln!(out, "# internal={}", internal.join(","));
    let public: Vec<String> = p.public.iter().map(|a| a.to_string()).collect();
    let _ = writeln!(out, "# public={}", public.join(","));
    let _ = writeln!(out, "# ports={}", p.ports);
    let _ = writeln!(out, "# per_client={}", p.per_client);
    let _ = writeln!(
        out,
        "# first_host={}",
        if p.include_first {
            "included"
        } else {
            "skipped"
        }
    );
    if let Some(t) = &p.table {
        let _ = writeln!(out, "# table={t}");
    }
    if let Some(o) = &p.oif {
        let _ = writeln!(out, "# oif={o}");
    }
}

fn render_nft(plan: &Plan, out: &mut String) {
    let table = plan
        .params
        .table
        .as_deref()
        .unwrap_or(super::plan::DEFAULT_TABLE);
    let oif = match &plan.params.oif {
        Some(o) => format!("oifname \"{o}\" "),
        None => String::new(),
    };
    let _ = write!(
        out,
        "\n# Replace this table only, in one transaction: create it if missing, delete\n\
         # it, define it anew.\n\
         table ip {table}\n\
         delete table ip {table}\n\
         table ip {table} {{\n\
         \tmap {MAP_NAME} {{\n\
         \t\ttype ipv4_addr : interval ipv4_addr . inet_service\n\
         \t\tflags interval\n\
         \t\telements = {{\n"
    );
    for b in &plan.blocks {
        let _ = writeln!(
            out,
            "\t\t\t{} : {} . {}-{},",
            b.internal, b.public, b.lo, b.hi
        );
    }
    let _ = write!(
        out,
        "\t\t}}\n\
         \t}}\n\
         \n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat - 10; policy accept;\n\
         \t\t{oif}meta l4proto {{ tcp, udp }} snat ip to ip saddr map @{MAP_NAME}\n\
         \t\t{oif}meta l4proto icmp snat ip to ip saddr map @{MAP_NAME}\n\
         \t}}\n\
         }}\n"
    );
}

fn render_iptables(plan: &Plan, out: &mut String) {
    let oif = match &plan.params.oif {
        Some(o) => format!(" -o {o}"),
        None => String::new(),
    };
    out.push_str(
        "\n# A complete nat table: iptables-restore replaces the whole nat table with it.\n\
         *nat\n\
         :PREROUTING ACCEPT [0:0]\n\
         :INPUT ACCEPT [0:0]\n\
         :OUTPUT ACCEPT [0:0]\n\
         :POSTROUTING ACCEPT [0:0]\n",
    );
    for b in &plan.blocks {
        for proto in ["tcp", "udp"] {
            let _ = writeln!(
                out,
                "-A POSTROUTING -s {}{oif} -p {proto} -j SNAT --to-source {}:{}-{}",
                b.internal, b.public, b.lo, b.hi
            );
        }
        let _ = writeln!(
            out,
            "-A POSTROUTING -s {}{oif} -p icmp -j SNAT --to-source {}",
            b.internal, b.public
        );
    }
    out.push_str("COMMIT\n");
}

/// The text without its generated-at line: what decides whether two rule
/// files hold the same rules.
pub fn without_generated_at(text: &str) -> &str {
    match text.split_once('\n') {
        Some((first, rest)) if first.starts_with(GENERATED_AT) => rest,
        _ => text,
    }
}

/// Whether two rule file texts hold the same rules (they may differ in the
/// generated-at line only).
pub fn same_rules(a: &str, b: &str) -> bool {
    without_generated_at(a) == without_generated_at(b)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::portblock::plan::PlanInput;

    pub(crate) fn small_plan(method: Method, oif: Option<&str>) -> Plan {
        Plan::new(&PlanInput {
            internal: vec![
                "10.8.0.0/30".parse().unwrap(),
                "10.9.0.0/31".parse().unwrap(),
            ],
            public: vec!["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()],
            ports: "64512-65535".parse().unwrap(),
            per_client: Some(512),
            method,
            table: None,
            oif: oif.map(String::from),
            include_first: false,
        })
        .unwrap()
    }

    const HEADER_NFT: &str = "\
# masqlog portblock rules generated at 2024-11-23T19:26:40Z
# masqlog-portblock/1
# method=nft
# internal=10.8.0.0/30,10.9.0.0/31
# public=192.0.2.1,192.0.2.2
# ports=64512-65535
# per_client=512
# first_host=skipped
# table=masqlog_portblock
# oif=wan0
#
# 3 clients; 2 blocks of 512 ports per public address.
# Each client address owns one block on one public address: its TCP and UDP
# source ports and ICMP echo ids are translated into that block only.
# Who was PUBLIC:PORT at time T: take the rule file with the highest timestamp
# <= T and find the block that holds PORT on PUBLIC, or run
#   masqlog portblock test --state-dir DIR --at T --public PUBLIC:PORT
";

    #[test]
    fn golden_nft() {
        let text = render(&small_plan(Method::Nft, Some("wan0")), 1_732_390_000);
        let body = "
# Replace this table only, in one transaction: create it if missing, delete
# it, define it anew.
table ip masqlog_portblock
delete table ip masqlog_portblock
table ip masqlog_portblock {
\tmap blocks {
\t\ttype ipv4_addr : interval ipv4_addr . inet_service
\t\tflags interval
\t\telements = {
\t\t\t10.8.0.2 : 192.0.2.1 . 65024-65535,
\t\t\t10.9.0.0 : 192.0.2.1 . 64512-65023,
\t\t\t10.9.0.1 : 192.0.2.2 . 65024-65535,
\t\t}
\t}

\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat - 10; policy accept;
\t\toifname \"wan0\" meta l4proto { tcp, udp } snat ip to ip saddr map @blocks
\t\toifname \"wan0\" meta l4proto icmp snat ip to ip saddr map @blocks
\t}
}
";
        assert_eq!(text, format!("{HEADER_NFT}{body}"));
    }

    #[test]
    fn golden_iptables() {
        let text = render(&small_plan(Method::Iptables, None), 1_732_390_000);
        let expected = "\
# masqlog portblock rules generated at 2024-11-23T19:26:40Z
# masqlog-portblock/1
# method=iptables
# internal=10.8.0.0/30,10.9.0.0/31
# public=192.0.2.1,192.0.2.2
# ports=64512-65535
# per_client=512
# first_host=skipped
#
# 3 clients; 2 blocks of 512 ports per public address.
# Each client address owns one block on one public address: its TCP and UDP
# source ports are translated into that block only; its ICMP goes out from
# the same public address (iptables cannot map ICMP ids to a range).
# Who was PUBLIC:PORT at time T: take the rule file with the highest timestamp
# <= T and find the block that holds PORT on PUBLIC, or run
#   masqlog portblock test --state-dir DIR --at T --public PUBLIC:PORT

# A complete nat table: iptables-restore replaces the whole nat table with it.
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 10.8.0.2 -p tcp -j SNAT --to-source 192.0.2.1:65024-65535
-A POSTROUTING -s 10.8.0.2 -p udp -j SNAT --to-source 192.0.2.1:65024-65535
-A POSTROUTING -s 10.8.0.2 -p icmp -j SNAT --to-source 192.0.2.1
-A POSTROUTING -s 10.9.0.0 -p tcp -j SNAT --to-source 192.0.2.1:64512-65023
-A POSTROUTING -s 10.9.0.0 -p udp -j SNAT --to-source 192.0.2.1:64512-65023
-A POSTROUTING -s 10.9.0.0 -p icmp -j SNAT --to-source 192.0.2.1
-A POSTROUTING -s 10.9.0.1 -p tcp -j SNAT --to-source 192.0.2.2:65024-65535
-A POSTROUTING -s 10.9.0.1 -p udp -j SNAT --to-source 192.0.2.2:65024-65535
-A POSTROUTING -s 10.9.0.1 -p icmp -j SNAT --to-source 192.0.2.2
COMMIT
";
        assert_eq!(text, expected);
    }

    #[test]
    fn iptables_oif() {
        let text = render(&small_plan(Method::Iptables, Some("wan0")), 0);
        assert!(text.contains(
            "-A POSTROUTING -s 10.8.0.2 -o wan0 -p tcp -j SNAT --to-source 192.0.2.1:65024-65535\n"
        ));
        assert!(text.contains("# oif=wan0\n"));
    }

    #[test]
    fn change_detection_ignores_the_generated_at_line_only() {
        let p = small_plan(Method::Nft, None);
        let a = render(&p, 1_732_390_000);
        let b = render(&p, 1_732_399_999);
        assert_ne!(a, b);
        assert!(same_rules(&a, &b));
        let other = render(&small_plan(Method::Nft, Some("wan0")), 1_732_390_000);
        assert!(!same_rules(&a, &other));
        // A change anywhere else counts, comments included.
        let edited = b.replace("# per_client=512", "# per_client=512 ");
        assert!(!same_rules(&a, &edited));
        // A file without our first line is compared whole.
        assert!(!same_rules("x\nsame\n", "y\nsame\n"));
    }
}
