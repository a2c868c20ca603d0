#!/bin/sh
# run_bench.sh - `make bench`: every benchmark of pstrain, each against its
# reference measured side by side in the same invocation.
set -e
cd "$(dirname "$0")/.."
/usr/bin/python3 bench/bench_train.py "$@"
