#!/bin/bash
# bench_cluster.sh [BIN] - the CNN (configs/fashion_cnn.cfg, 3 epochs) on the
# test bed (tests/cluster/testbed.sh) with a 1 Gbit/s cap on every host's link,
# for 1 and 2 server hosts x 2 trainer hosts, with compression none, fp16
# (pushes and pulls) and top-k 1% (pushes; pulls fp16, since parameters do
# not sparsify), side by side in one run: training samples/s, the time to
# 89% test accuracy (wall time at the end of the first epoch that reached it),
# and the bytes trainer 0 sent per step. Prints a Markdown table. Root only.
# AUTH (default none) sets cluster.auth: the bench measures the network, and
# CURVE's encryption would take CPU from the 2 cores the 4 hosts share
# (`make bench` shows what CURVE costs).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=$(realpath "${1:-$root/build/pstrain}")
RATE=${RATE:-1gbit}
AUTH=${AUTH:-none}
export TESTBED_DIR=${TESTBED_DIR:-/tmp/pstrain-testbed}
why=$("$root/tests/cluster/testbed.sh" check) || { echo "bench-cluster: $why"; exit 1; }
work=$(mktemp -d /tmp/pstrain-bench-cluster.XXXXXX)
trap '"$root/tests/cluster/testbed.sh" down; rm -rf "$work"' EXIT
"$root/tests/cluster/testbed.sh" up 4 "$RATE" > /dev/null
mpirun="mpirun --allow-run-as-root --oversubscribe --hostfile $TESTBED_DIR/hostfile
        --mca plm_rsh_agent $root/tests/cluster/agent.sh --mca plm_rsh_no_tree_spawn 1
        --mca oob_tcp_if_include 10.77.0.0/24 --mca btl_tcp_if_include 10.77.0.0/24"
echo "| server hosts x trainer hosts | compression (push / pull) | samples/s | time to 89% | test acc | bytes sent per step (trainer 0) | bytes received per step (trainer 0) |"
echo "|---|---|---|---|---|---|---|"
for S in 1 2; do
    if [ $S = 1 ]; then hosts=h1:1,h3:1,h4:1; else hosts=h1:1,h2:1,h3:1,h4:1; fi
    for comp in none fp16 topk; do
        out=$work/s${S}_$comp
        pull=$([ $comp = none ] && echo none || echo fp16)
        $mpirun -np $((S + 2)) --host $hosts --map-by node "$bin" --servers $S \
            --config "$root/configs/fashion_cnn.cfg" --bind eth1 --set cluster.compression=$comp \
            --set cluster.pull_compression=$pull --set cluster.auth=$AUTH \
            --out "$out" --no-plot --quiet > "$out.log" 2>&1 || { echo "| $S x 2 | $comp | failed | | | |"; tail -5 "$out.log"; continue; }
        node -e '
            const fs = require("fs");
            const s = require(process.argv[1] + "/summary.json");
            const rows = fs.readFileSync(process.argv[1] + "/metrics.csv", "utf8").trim().split("\n").slice(1)
                .map((l) => l.split(","));
            const hit = rows.find((r) => Number(r[7]) >= 0.89);
            const t = hit ? Number(hit[8]).toFixed(1) + " s (epoch " + hit[0] + ")" : "not reached";
            const b = s.trainer0 ? s.trainer0.bytes_sent / s.steps : NaN;
            const r = s.trainer0 ? s.trainer0.bytes_received / s.steps : NaN;
            console.log(`| ${process.argv[2]} x 2 | ${process.argv[3]} / ${process.argv[4]} | ${Math.round(s.samples_per_s)} | ${t} | ${(100 * s.test_accuracy).toFixed(2)}% | ${Math.round(b)} | ${Math.round(r)} |`);
        ' "$out" "$S" "$comp" "$pull"
    done
done
