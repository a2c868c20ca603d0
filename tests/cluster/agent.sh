#!/bin/sh
# agent.sh HOST COMMAND... - Open MPI's remote-start agent for the test bed
# (--mca plm_rsh_agent): runs COMMAND in the network namespace of test-bed
# host HOST (h1, h2, ...) with that host name (a UTS namespace of its own),
# as ssh would on a real node. Options before HOST (ssh-style) are ignored.
# TESTBED_PREFIX names a second test bed (testbed.sh).
while [ $# -gt 0 ]; do
    case $1 in
    -*) shift ;;
    *) break ;;
    esac
done
host=$1
shift
case $host in
h[0-9]*) ;;
*) echo "agent.sh: $host is not a test-bed host" >&2; exit 255 ;;
esac
exec ip netns exec "${TESTBED_PREFIX:-pst}-$host" unshare --uts sh -c "hostname $host && $*"
