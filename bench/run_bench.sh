#!/bin/sh
# run_bench.sh - `make bench`: every benchmark of pstrain, each against its
# reference measured side by side in the same invocation.
set -e
cd "$(dirname "$0")/.."
echo "== protocol: push + pull round trips, pstrain with and without CURVE, against raw ZeroMQ"
build/bench_proto 5
echo

# What CURVE costs a real job: the CNN with 1 server + 2 trainers under
# mpirun, cluster.auth = "curve" (the default) and "none" alternating,
# median training samples/s of CURVE_ROUNDS (3) rounds of CURVE_STEPS (1,719: one
# epoch at batch 32) steps.
echo "== distributed training (CNN, 1 server + 2 trainers): CURVE on vs off"
rounds=${CURVE_ROUNDS:-3}
steps=${CURVE_STEPS:-1719}
root=$( [ "$(id -u)" = 0 ] && echo --allow-run-as-root )
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rate() { # $1: curve|none -> samples/s of one run
    line=$(mpirun $root --oversubscribe -np 3 build/pstrain --config configs/fashion_cnn.cfg \
        --out "$tmp/$1" --quiet --no-plot --set train.threads=1 --set train.max_steps="$steps" \
        --set data.validation=0 --set data.test_limit=500 --set cluster.auth="$1")
    echo "$line" | sed -n 's/.* steps, \([0-9]*\) samples\/s.*/\1/p' | grep . ||
        { echo "run_bench.sh: cluster.auth=$1: no result ($line)" >&2; exit 1; }
}
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
: > "$tmp/curve.txt"
: > "$tmp/none.txt"
i=0
while [ $i -lt "$rounds" ]; do
    rate none >> "$tmp/none.txt"
    rate curve >> "$tmp/curve.txt"
    i=$((i + 1))
done
none=$(median < "$tmp/none.txt")
curve=$(median < "$tmp/curve.txt")
printf '%-22s %10s samples/s\n' "cluster.auth = none" "$none" "cluster.auth = curve" "$curve"
awk -v c="$curve" -v n="$none" 'BEGIN { printf "curve/none %.2fx (median of %d rounds, %d steps)\n", c / n, '"$rounds"', '"$steps"' }'
echo

echo "== training throughput against PyTorch"
/usr/bin/python3 bench/bench_train.py "$@"
