#!/bin/sh
# run_bench.sh - `make bench`: every benchmark of pstrain, each against its
# reference measured side by side in the same invocation.
set -e
cd "$(dirname "$0")/.."
echo "== protocol: push + pull round trips, pstrain with and without CURVE, against raw ZeroMQ"
echo "   (server and client in one process: with 2 ZeroMQ I/O threads their two connections"
echo "   run on a thread each, as a server's connections to two trainers would)"
build/bench_proto 5 1
build/bench_proto 5 2
echo

echo "== click logs: Criteo lines parsed per second on one core, against a raw read of the file"
build/bench_ctr_parse 2000000 5
echo

# What CURVE costs a real job: the CNN with 1 server + 2 trainers under
# mpirun, cluster.auth = "curve" (the default, with cluster.io_threads = auto:
# the server gets an I/O thread per trainer), "curve" with 1 I/O thread, and
# "none" alternating, median training samples/s of CURVE_ROUNDS (3) rounds of
# CURVE_STEPS (1,719: one epoch at batch 32) steps.
echo "== distributed training (CNN, 1 server + 2 trainers): CURVE on vs off"
rounds=${CURVE_ROUNDS:-3}
steps=${CURVE_STEPS:-1719}
root=$( [ "$(id -u)" = 0 ] && echo --allow-run-as-root )
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rate() { # $1: curve|none [$2: I/O threads] -> samples/s of one run
    line=$(mpirun $root --oversubscribe -np 3 build/pstrain --config configs/fashion_cnn.cfg \
        --out "$tmp/$1" --quiet --no-plot --set train.threads=1 --set train.max_steps="$steps" \
        --set data.validation=0 --set data.test_limit=500 --set cluster.auth="$1" \
        --set cluster.io_threads="${2:-auto}")
    echo "$line" | sed -n 's/.* steps, \([0-9]*\) samples\/s.*/\1/p' | grep . ||
        { echo "run_bench.sh: cluster.auth=$1: no result ($line)" >&2; exit 1; }
}
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
: > "$tmp/curve.txt"
: > "$tmp/curve1.txt"
: > "$tmp/none.txt"
i=0
while [ $i -lt "$rounds" ]; do
    rate none >> "$tmp/none.txt"
    rate curve >> "$tmp/curve.txt"
    rate curve 1 >> "$tmp/curve1.txt"
    i=$((i + 1))
done
none=$(median < "$tmp/none.txt")
curve=$(median < "$tmp/curve.txt")
curve1=$(median < "$tmp/curve1.txt")
printf '%-40s %10s samples/s\n' "cluster.auth = none" "$none" \
    "cluster.auth = curve, I/O threads auto" "$curve" "cluster.auth = curve, 1 I/O thread" "$curve1"
awk -v c="$curve" -v n="$none" -v c1="$curve1" 'BEGIN { printf "curve/none %.2fx; curve with auto I/O threads / with 1: %.2fx (median of %d rounds, %d steps)\n", c / n, c / c1, '"$rounds"', '"$steps"' }'
echo

echo "== training throughput against PyTorch"
/usr/bin/python3 bench/bench_train.py "$@"
