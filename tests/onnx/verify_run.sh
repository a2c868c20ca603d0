#!/bin/sh
# verify_run.sh RUN_DIR [IMAGES LABELS [LIMIT]] - proves a run's exported model:
# ONNX Runtime (onnxruntime-node) on RUN_DIR/model.onnx and `pstrain predict`
# on RUN_DIR/model.ckpt must classify exactly as many test images right as
# the run reported in RUN_DIR/summary.json (test_accuracy), and the two must
# predict the same class for every image.
# IMAGES and LABELS default to Fashion-MNIST's test set; LIMIT uses its first
# LIMIT images (a run with data.test_limit). Exit 0 when all three
# agree; 1 with the figures otherwise.
set -eu
run=${1:?usage: verify_run.sh RUN_DIR [IMAGES LABELS]}
data=/usr/share/datasets/fashion-mnist
images=${2:-$data/t10k-images-idx3-ubyte.gz}
labels=${3:-$data/t10k-labels-idx1-ubyte.gz}
limit=${4:-0}
here=$(dirname "$0")
bin=${PST_BIN:-build/pstrain}

for f in "$run/model.onnx" "$run/model.ckpt" "$run/summary.json"; do
    [ -f "$f" ] || { echo "verify_run.sh: $f is missing" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ort=$(node "$here/accuracy.js" "$run/model.onnx" "$images" "$labels" --preds "$tmp/ort.bin" --limit "$limit")
ort_right=$(node -e 'const r = JSON.parse(process.argv[1]); console.log(r.correct + " " + r.n)' "$ort")
"$bin" predict --checkpoint "$run" --images "$images" --labels "$labels" --limit "$limit" \
    > "$tmp/native.txt"
# per image: "index<TAB>class<TAB>name<TAB>probability"
differ=$(node -e '
    const fs = require("fs");
    const b = fs.readFileSync(process.argv[1]); /* may be a view of a pooled buffer */
    const ort = Int32Array.from({ length: b.length / 4 }, (_, i) => b.readInt32LE(4 * i));
    const lines = fs.readFileSync(process.argv[2], "utf8").split("\n").filter((l) => /^\d+\t/.test(l));
    let d = 0;
    if (lines.length !== ort.length) d = -1;
    else lines.forEach((l, i) => { if (Number(l.split("\t")[1]) !== ort[i]) d++; });
    console.log(d)' "$tmp/ort.bin" "$tmp/native.txt")
native=$(grep '^accuracy' "$tmp/native.txt")
# "accuracy 85.01% (8501 of 10000 images)"
native_right=$(echo "$native" | sed -n 's/.*(\([0-9]*\) of \([0-9]*\) images).*/\1 \2/p')
reported=$(node -e '
    const s = require(require("path").resolve(process.argv[1]));
    console.log(s.test_accuracy)' "$run/summary.json")
n=${ort_right#* }
reported_right=$(node -e 'console.log(Math.round(Number(process.argv[1]) * Number(process.argv[2])))' "$reported" "$n")
echo "$run: ONNX Runtime $ort_right, pstrain predict $native_right, training reported accuracy $reported (= $reported_right of $n)"
echo "$run: images where ONNX Runtime and pstrain predict differ: $differ"
if [ "$differ" = 0 ] && [ "$ort_right" = "$native_right" ] && [ "${ort_right% *}" = "$reported_right" ]; then
    echo "$run: model.onnx, model.ckpt and the run agree on every image"
else
    echo "$run: MISMATCH" >&2
    exit 1
fi
