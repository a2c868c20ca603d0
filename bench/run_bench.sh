#!/bin/sh
# run_bench.sh - `make bench`: every benchmark of pstrain, each against its
# reference measured side by side in the same invocation.
set -e
cd "$(dirname "$0")/.."
echo "== protocol: push + pull round trips against raw ZeroMQ"
build/bench_proto 5
echo
echo "== training throughput against PyTorch"
/usr/bin/python3 bench/bench_train.py "$@"
