#!/bin/bash
# multihost.sh [BIN] - pstrain across the hosts of the test bed (testbed.sh):
# each check prints one line, the script exits 0 when all passed and 1 (with
# the logs) at the first failure. It makes the test bed itself and tears it
# down on exit, also on failure. Root only (testbed.sh check says why not).
#
#   layout_1x2     server on h1, trainers on h2 and h3 (--bind eth1): the job
#                  trains, cluster.json shows each rank's host and the server's
#                  10.77.0.x endpoint, and BSP equals single-process training
#                  within 1e-5 after 20 steps
#   mixed_2x2      2 servers and 2 trainers spread over h1 and h2, one of each
#                  per host
#   loopback       the default bind (127.0.0.1) across hosts is refused at start
#   link_cut       h3's link goes down in the middle of a job: the job stops
#                  within the timeout naming the lost host and rank, with a
#                  checkpoint; mpirun exits non-zero once the link is back
#                  (its daemon on h3 was cut off too), and --resume finishes it
#   lead_cut       in an ASP job, the link of h2, where trainer 0 runs, goes down:
#                  trainer 1 on h3 takes its place, finishes the job and writes
#                  the model, which classifies the test images as it reported
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=$(realpath "${1:-$root/build/pstrain}")
export TESTBED_DIR=${TESTBED_DIR:-/tmp/pstrain-testbed}
work=$(mktemp -d /tmp/pstrain-multihost.XXXXXX)
why=$("$here/testbed.sh" check) || { echo "multihost: skipped: $why"; exit 77; }
trap '"$here/testbed.sh" down; rm -rf "$work"' EXIT
"$here/testbed.sh" up 3 > /dev/null
mpirun="mpirun --allow-run-as-root --oversubscribe --hostfile $TESTBED_DIR/hostfile
        --mca plm_rsh_agent $here/agent.sh --mca plm_rsh_no_tree_spawn 1
        --mca oob_tcp_if_include 10.77.0.0/24 --mca btl_tcp_if_include 10.77.0.0/24"
cfg=$work/job.cfg
cat > "$cfg" <<'EOF'
name = "multihost";
data = { limit = 3000; validation = 300; test_limit = 500; };
model = { input = [1, 28, 28];
  layers = ( { type = "conv2d"; filters = 8; kernel = 3; activation = "relu"; },
             { type = "maxpool2d"; pool = 2; }, { type = "flatten"; },
             { type = "dense"; units = 10; activation = "softmax"; } ); };
optimizer = { name = "adam"; };
train = { epochs = 1; batch = 32; seed = 4; max_steps = 20; log_every = 1000; };
cluster = { timeout_ms = 4000; bind = "eth1"; };
EOF
fail() {
    echo "multihost $1: $2"
    for f in "$work"/*.log; do echo "--- $f"; tail -n 25 "$f"; done
    exit 1
}
json() { # json FILE EXPRESSION(c): prints the expression over the parsed file
    node -e "const c = require(process.argv[1]); console.log($2)" "$1"
}

# layout_1x2
$mpirun -np 3 --map-by node "$bin" --servers 1 --config "$cfg" --out "$work/d" --no-plot \
    > "$work/d.log" 2>&1 || fail layout_1x2 "the job failed"
"$bin" --local --config "$cfg" --out "$work/l" --no-plot --quiet > "$work/l.log" 2>&1 ||
    fail layout_1x2 "the single-process run failed"
hosts=$(json "$work/d/cluster.json" 'c.ranks.map((r) => r.role + "@" + r.host).join(" ")')
[ "$hosts" = "server@h1 trainer@h2 trainer@h3" ] || fail layout_1x2 "cluster.json hosts: $hosts"
ep=$(json "$work/d/cluster.json" 'c.ranks[0].endpoint')
case $ep in tcp://10.77.0.11:*) ;; *) fail layout_1x2 "server endpoint $ep" ;; esac
diff=$(node -e '
    const fs = require("fs");
    function params(p) { // the PARAMS section (id 4) of a checkpoint
        const b = fs.readFileSync(p);
        let pos = 16;
        for (let k = 0; k < b.readUInt32LE(12); k++) {
            const id = b.readUInt32LE(pos), len = Number(b.readBigUInt64LE(pos + 4));
            if (id === 4) return new Float32Array(b.buffer.slice(b.byteOffset + pos + 16, b.byteOffset + pos + 16 + len));
            pos += 16 + len;
        }
    }
    const a = params(process.argv[1]), b = params(process.argv[2]);
    let d = a.length === b.length ? 0 : Infinity;
    for (let i = 0; i < a.length && d < Infinity; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
    console.log(d)' "$work/d/model.ckpt" "$work/l/model.ckpt")
node -e "process.exit(Number(process.argv[1]) <= 1e-5 ? 0 : 1)" "$diff" ||
    fail layout_1x2 "BSP across hosts differs from single-process training by $diff"
echo "layout_1x2: server on h1 ($ep), trainers on h2 and h3; max |diff| to single-process $diff"

# mixed_2x2: ranks 0 and 2 on h1, 1 and 3 on h2 (by node): servers 0,1 / trainers 2,3
$mpirun -np 4 --map-by node --host h1:2,h2:2 "$bin" --servers 2 --config "$cfg" --out "$work/m" \
    --no-plot > "$work/m.log" 2>&1 || fail mixed_2x2 "the job failed"
hosts=$(json "$work/m/cluster.json" 'c.ranks.map((r) => r.role + "@" + r.host).join(" ")')
[ "$hosts" = "server@h1 server@h2 trainer@h1 trainer@h2" ] || fail mixed_2x2 "hosts: $hosts"
echo "mixed_2x2: $hosts"

# loopback: refused at start-up, not a hang
timeout 60 $mpirun -np 3 --map-by node "$bin" --servers 1 --config "$cfg" \
    --set cluster.bind=127.0.0.1 --out "$work/b" --no-plot > "$work/b.log" 2>&1 &&
    fail loopback "the job ran with its server on loopback"
grep -q "listens on loopback (tcp://127.0.0.1:[0-9]*) on host h1, which this host (h[23]) cannot reach" \
    "$work/b.log" || fail loopback "no message about the loopback bind"
echo "loopback: refused: $(grep -m1 -o 'server 0 listens on loopback.*cannot reach' "$work/b.log")"

# link_cut: a long job with periodic checkpoints; h3's link goes down. The
# ranks stop within the timeout (trainer 0 with a checkpoint of the last
# complete step); mpirun's own daemon on h3 is cut off too, so mpirun can end
# only once the link is back: it must then exit, non-zero, by itself.
$mpirun -np 3 --map-by node "$bin" --servers 1 --config "$cfg" \
    --set train.max_steps=0 --set train.epochs=200 --set checkpoint.every_steps=40 \
    --out "$work/c" --no-plot > "$work/c.log" 2>&1 &
job=$!
for _ in $(seq 600); do
    ls "$work"/c/checkpoints/step-*/manifest.json > /dev/null 2>&1 && break
    sleep 0.1
done
ip -n pst-h3 link set eth1 down
t0=$(date +%s.%N)
for _ in $(seq 300); do
    grep -q "ending the job" "$work/c.log" && break
    sleep 0.1
done
t1=$(date +%s.%N)
ip -n pst-h3 link set eth1 up
for _ in $(seq 150); do kill -0 $job 2> /dev/null || break; sleep 0.2; done
kill -9 $job 2> /dev/null && fail link_cut "mpirun did not end within 30 s of the link's return"
wait $job && fail link_cut "mpirun exited 0 after the job lost a host"
grep -q "trainer 1 (rank 2 on h3) lost" "$work/c.log" || fail link_cut "no message naming h3"
grep -q "rank 1 trainer 0: exit status 1: ending the job" "$work/c.log" ||
    fail link_cut "trainer 0 did not stop"
grep -q "written to $work/c/checkpoints; continue with --resume" "$work/c.log" ||
    grep -q "no consistent checkpoint could be written; continue from the last periodic one" \
        "$work/c.log" || fail link_cut "no word on the checkpoint"
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
awk -v s="$secs" 'BEGIN { exit !(s <= 4 + 3) }' || fail link_cut "the job took $secs s to stop"
echo "link_cut: stopped $secs s after the cut (timeout 4 s): $(grep -m1 -o 'trainer 1 (rank 2 on h3) lost[^;]*' "$work/c.log")"
timeout 120 $mpirun -np 3 --map-by node "$bin" --servers 1 --config "$cfg" --set train.max_steps=0 \
    --set train.epochs=3 --resume "$work/c" --out "$work/c" --no-plot > "$work/c2.log" 2>&1 ||
    fail link_cut "--resume failed after the link came back"
acc=$(json "$work/c/summary.json" 'c.test_accuracy')
echo "link_cut: resumed from $(grep -m1 -o 'resuming from [^ ]*' "$work/c2.log" | cut -d' ' -f3) once the link was back: test accuracy $acc"

# lead_cut: trainer 0 (h2) is cut off in an ASP job; trainer 1 (h3) leads
# from its next pull after the server gave trainer 0 up, and writes the
# model at the end. The link comes back only then (mpirun waits for its
# daemon on h2; trainer 0 itself stops on its own timeout).
$mpirun -np 3 --map-by node "$bin" --servers 1 --config "$cfg" --set cluster.consistency=asp \
    --set train.max_steps=0 --set train.epochs=40 --set checkpoint.every_steps=40 \
    --out "$work/e" --no-plot > "$work/e.log" 2>&1 &
job=$!
for _ in $(seq 600); do
    ls "$work"/e/checkpoints/step-*/manifest.json > /dev/null 2>&1 && break
    sleep 0.1
done
ip -n pst-h2 link set eth1 down
for _ in $(seq 600); do
    [ -f "$work/e/summary.json" ] && break
    sleep 0.1
done
ip -n pst-h2 link set eth1 up
for _ in $(seq 150); do kill -0 $job 2> /dev/null || break; sleep 0.2; done
kill -9 $job 2> /dev/null && fail lead_cut "mpirun did not end within 30 s of the link's return"
wait $job
grep -q "rank 2 trainer 1: trainer 0 (rank 1) was lost: this trainer \(leads the job from step\|writes the job's checkpoint, model and metrics in its place\)" \
    "$work/e.log" || fail lead_cut "trainer 1 did not take trainer 0's place"
[ -f "$work/e/summary.json" ] || fail lead_cut "no summary.json: the job did not finish"
data=/usr/share/datasets/fashion-mnist
PST_BIN=$bin "$root/tests/onnx/verify_run.sh" "$work/e" "$data/t10k-images-idx3-ubyte.gz" \
    "$data/t10k-labels-idx1-ubyte.gz" 500 > "$work/e-verify.log" 2>&1 ||
    fail lead_cut "the exported model is not the one reported: $(tail -n 3 "$work/e-verify.log")"
echo "lead_cut: trainer 0 on h2 cut off; trainer 1 on h3 $(grep -m1 -o 'was lost: this trainer [^(]*' "$work/e.log" | sed 's/.*this trainer //;s/ *$//'); test accuracy $(json "$work/e/summary.json" 'c.test_accuracy'), the model verified"
exit 0
