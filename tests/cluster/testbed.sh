#!/bin/bash
# testbed.sh - H "hosts" on one machine: network namespaces pst-h1..pst-hH on
# a bridge, each with its own address and hostname, for multi-host tests of
# pstrain under mpirun. Root and iproute2 (ip, tc) only.
#
#   testbed.sh up H [RATE]   make them (RATE: a tbf cap per host and direction,
#                            e.g. 1gbit); prints the hostfile path
#   testbed.sh down          remove every namespace, link and file it made
#   testbed.sh check         exit 0 when this machine can run it (root, ip netns)
#
# Addresses: the bridge pstbr0 is 10.77.0.1/24 in the root namespace (where
# mpirun runs); host hI is 10.77.0.(10+I) on its interface eth1. Nothing else
# is touched: no other interface, route or file outside $TESTBED_DIR.
# TESTBED_PREFIX (default pst) and TESTBED_NET (default 10.77.0) name a
# second test bed that can stand beside the first (namespaces PREFIX-hI,
# bridge PREFIXbr0, links PREFIXvI; agent.sh reads TESTBED_PREFIX too), so
# that one's `down` leaves the other alone (bench/validate.py uses psv).
# Open MPI starts its daemons in the hosts through tests/cluster/agent.sh
# (--mca plm_rsh_agent), with its TCP traffic on the bridge's subnet.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
TESTBED_DIR=${TESTBED_DIR:-/tmp/pstrain-testbed}
PFX=${TESTBED_PREFIX:-pst}
BR=${PFX}br0
NET=${TESTBED_NET:-10.77.0}

check() {
    [ "$(id -u)" = 0 ] || { echo "testbed: not root"; return 1; }
    command -v ip > /dev/null || { echo "testbed: no ip (iproute2)"; return 1; }
    command -v unshare > /dev/null || { echo "testbed: no unshare (util-linux)"; return 1; }
    command -v node > /dev/null || { echo "testbed: no node (the tests read JSON with it)"; return 1; }
    ip netns add "$PFX-probe" 2> /dev/null || { echo "testbed: ip netns add fails here"; return 1; }
    if ! ip netns exec "$PFX-probe" unshare --uts true 2> /dev/null; then
        ip netns del "$PFX-probe"
        echo "testbed: unshare --uts fails here"
        return 1
    fi
    ip netns del "$PFX-probe"
    return 0
}

down() {
    for ns in $(ip netns list 2> /dev/null | awk -v p="^$PFX-h[0-9]+" '$1 ~ p {print $1}'); do
        ip netns del "$ns" 2> /dev/null || true
    done
    ip link del "$BR" 2> /dev/null || true
    for l in $(ip -o link show 2> /dev/null | awk -F': ' -v p="^${PFX}v[0-9]+" '$2 ~ p {print $2}' |
               cut -d@ -f1); do
        ip link del "$l" 2> /dev/null || true
    done
    rm -rf "$TESTBED_DIR"
}

up() {
    local H=$1 rate=${2:-}
    down
    mkdir -p "$TESTBED_DIR"
    ip link add "$BR" type bridge
    ip addr add "$NET.1/24" dev "$BR"
    ip link set "$BR" up
    : > "$TESTBED_DIR/hostfile"
    for i in $(seq "$H"); do
        local ns=$PFX-h$i
        ip netns add "$ns"
        ip link add "${PFX}v$i" type veth peer name eth1 netns "$ns"
        ip link set "${PFX}v$i" master "$BR"
        ip link set "${PFX}v$i" up
        ip -n "$ns" addr add "$NET.$((10 + i))/24" dev eth1
        ip -n "$ns" link set eth1 up
        ip -n "$ns" link set lo up
        if [ -n "$rate" ]; then
            # both directions of the host's link: out of the host, and into it
            ip netns exec "$ns" tc qdisc add dev eth1 root tbf rate "$rate" burst 512kb latency 100ms
            tc qdisc add dev "${PFX}v$i" root tbf rate "$rate" burst 512kb latency 100ms
        fi
        echo "h$i slots=4" >> "$TESTBED_DIR/hostfile"
    done
    echo "$H" > "$TESTBED_DIR/hosts"
    echo "$TESTBED_DIR/hostfile"
}

case ${1:-} in
up) up "${2:?testbed.sh up H [RATE]}" "${3:-}" ;;
down) down ;;
check) check ;;
*) echo "usage: testbed.sh up H [RATE] | down | check" >&2; exit 2 ;;
esac
