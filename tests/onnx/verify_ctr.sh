#!/bin/sh
# verify_ctr.sh RUN_DIR LOG [LIMIT] - proves the ONNX export of a model with
# embedding tables: `pstrain predict --criteo` on RUN_DIR/model.ckpt (and its
# row files) and ONNX Runtime (onnxruntime-node, run_ctr.js) on
# RUN_DIR/model.onnx (and model.onnx.data, if any) give the same click
# probability for each of the first LIMIT lines of the click log LOG
# (default 100000), within TOL (default 1e-5). pstrain writes the inputs
# ONNX Runtime takes (--dump-inputs: dense features and reduced ids), so
# both read the lines through one parser. Exit 0 when they agree; 1 with
# the largest difference otherwise.
set -eu
run=${1:?usage: verify_ctr.sh RUN_DIR LOG [LIMIT]}
log=${2:?usage: verify_ctr.sh RUN_DIR LOG [LIMIT]}
limit=${3:-100000}
tol=${TOL:-1e-5}
here=$(dirname "$0")
bin=${PST_BIN:-build/pstrain}

for f in "$run/model.onnx" "$run/model.ckpt" "$log"; do
    [ -f "$f" ] || { echo "verify_ctr.sh: $f is missing" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
"$bin" predict --checkpoint "$run" --criteo "$log" --limit "$limit" \
    --dump-inputs "$tmp/in" > "$tmp/native.txt"
mid=$(date +%s)
rc=0
node "$here/run_ctr.js" "$run/model.onnx" "$tmp/in.num" "$tmp/in.ids" "$tmp/ort.bin" \
    --compare "$tmp/native.txt" --tol "$tol" > "$tmp/ort.txt" || rc=$?
end=$(date +%s)
tail -n 1 "$tmp/ort.txt"
echo "$run: pstrain predict $((mid - start)) s, ONNX Runtime $((end - mid)) s"
[ "$rc" = 0 ] || { echo "$run: MISMATCH (or ONNX Runtime failed)" >&2; exit 1; }
