#!/bin/sh
# Router set-up for masqlog's transparent IDENT (ident=transparent), as in
# README "Transparent mode": the plugin queries each client's identd from the
# remote server's address (IP_TRANSPARENT); the replies, addressed to that
# foreign address, must reach the router itself instead of being forwarded.
# TCP packets that belong to a transparent socket are marked 0x1, and marked
# packets are routed to the local host (table 100). IPv4 and IPv6.
#
# Run once as root (e.g. from a systemd unit or /etc/network/if-up.d) on the
# router, in the network namespace where ulogd runs. Check the result with
#   masqlog check-config /etc/ulogd.conf
# ulogd needs CAP_NET_ADMIN for transparent sockets: Debian's ulogd2.service
# starts it with --uid ulog, which drops it (see ulogd2-masqlog.conf here).
set -e

nft -f - <<'NFT'
table inet masqlog_ident {
    chain pre {
        type filter hook prerouting priority mangle; policy accept;
        meta l4proto tcp socket transparent 1 meta mark set 0x1
    }
}
NFT
ip rule add fwmark 0x1 lookup 100
ip route add local 0.0.0.0/0 dev lo table 100
ip -6 rule add fwmark 0x1 lookup 100
ip -6 route add local ::/0 dev lo table 100
