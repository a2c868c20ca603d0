# pstrain - distributed parameter-server training in C11.
# `make run` and `make test` install what is missing (make deps), build and run.
# Switches: DEBUG=1 (no optimisation, -g), ASAN=1 (AddressSanitizer + UBSan).

CC ?= mpicc
ifeq ($(origin CC),default)
CC = mpicc
endif

PKGS := zlib libconfig libcjson libzmq msgpack openblas libprotobuf-c
# Debian's msgpack-c ships its pkg-config file as msgpack-c in newer releases.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# -fvect-cost-model=dynamic: GCC 12's -O2 vectorises only loops it needs no
# run-time check for (the "very cheap" model), which left scalar most of our
# elementwise loops whose pointers might alias (the LSTM's gates, the row
# gathers, the gradient sums). The dynamic model (-O3's) vectorises them
# behind an overlap check; it reorders no floating-point sum, so results are
# bit for bit the same. 2026-12-07, two sets of alternating rounds (medians):
# the LSTM +7% and +12% at 1 thread, +14-22% and +9% at 2; DLRM +3%; the
# CNN unchanged.
OPT ?= -O2 -march=native -fvect-cost-model=dynamic
ifeq ($(DEBUG),1)
OPT = -O0 -g
endif
SAN :=
BUILD := build
ifeq ($(ASAN),1)
SAN = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT = -O1 -g
BUILD := build-asan
endif

# C code that protoc-c generates from export/onnx.proto (the ONNX schema we
# write): built into $(GEN), never committed.
GEN := $(BUILD)/gen
PROTO_C := $(GEN)/export/onnx.pb-c.c
PROTO_H := $(GEN)/export/onnx.pb-c.h
PROTO_OBJ := $(GEN)/export/onnx.pb-c.o

CFLAGS ?=
CFLAGS += -std=c11 -D_GNU_SOURCE $(OPT) -fopenmp-simd -fno-math-errno -Wall -Wextra -Werror $(SAN) \
          -I. -Itests -I$(GEN)/export $(PKG_CFLAGS)
LDLIBS += $(PKG_LIBS) -lcunit -lm -lpthread
LDFLAGS += $(SAN)

LIB_SRC := $(wildcard common/*/*.c trainer/*.c ps/*.c export/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(PROTO_OBJ)
MAIN_OBJ := $(BUILD)/launch/main.o
LAUNCH_SRC := $(filter-out launch/main.c,$(wildcard launch/*.c))
LAUNCH_OBJ := $(LAUNCH_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/*.c) tests/fuzz/harness.c tests/fuzz/criteo_check.c
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
BENCH_SRC := $(wildcard bench/*.c)

# Debian packages. DEPS are needed to build and test; DEPS_PY only by
# `make fixtures` and `make bench` (the PyTorch reference).
DEPS := build-essential pkg-config openmpi-bin libopenmpi-dev libopenblas-dev libzmq3-dev \
        libmsgpack-dev libcunit1-dev zlib1g-dev libconfig-dev libcjson-dev gnuplot-nox \
        dataset-fashion-mnist libprotobuf-c-dev protobuf-c-compiler python3-onnx iproute2 \
        util-linux
DEPS_PY := python3-torch python3-numpy
# ... and DEPS_FUZZ only by `make fuzz` (libFuzzer comes with clang).
DEPS_FUZZ := clang libclang-rt-14-dev
PY := /usr/bin/python3

.PHONY: all deps deps-py run test test-asan bench bench-rows bench-calibrate bench-scale bench-scale-compare bench-validate bench-ctr bench-export ctr-data ctr-1b ctr-1b-data fixtures verify-torch verify-onnx verify-ctr-onnx seed-spread clean \
        test-cluster test-cluster-if-possible bench-cluster \
        deps-fuzz fuzz fuzz-build fuzz-seeds fuzz-wire fuzz-server

all: $(BUILD)/pstrain $(BUILD)/test_pstrain

# Installs (apt-get) only the packages that are missing; a no-op otherwise.
deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	else echo "make deps: all packages present"; fi

deps-py:
	@missing=$$(for p in $(DEPS_PY); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; fi

$(BUILD)/%.o: %.c $(wildcard common/*/*.h trainer/*.h ps/*.h launch/*.h export/*.h tests/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC  $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(PROTO_C): export/onnx.proto
	@mkdir -p $(dir $@)
	@echo "  PROTOC-C  $<"
	@protoc-c --proto_path=export --c_out=$(dir $@) $<
$(PROTO_H): $(PROTO_C)

$(PROTO_OBJ): $(PROTO_C) $(PROTO_H)
	@echo "  CC  $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/export/onnx.o $(BUILD)/export/onnx_tables.o: $(PROTO_H)

$(BUILD)/libpstrain.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/pstrain: $(MAIN_OBJ) $(LAUNCH_OBJ) $(BUILD)/libpstrain.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test_pstrain: $(TEST_OBJ) $(LAUNCH_OBJ) $(BUILD)/libpstrain.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench_proto: bench/bench_proto.c bench/bench_ps.c $(BUILD)/libpstrain.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench_ctr_parse: bench/bench_ctr_parse.c $(BUILD)/libpstrain.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The row store's pull + push against copying the same bytes (make bench-rows).
$(BUILD)/bench_rows: bench/bench_rows.c $(BUILD)/libpstrain.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The GEMM floor of a model: its dense layers' products alone (make bench-ctr).
$(BUILD)/bench_gemm: bench/bench_gemm.c $(BUILD)/libpstrain.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The measured parts of the performance model (make bench-calibrate).
$(BUILD)/bench_calib: bench/bench_calib.c bench/bench_ps.c $(BUILD)/libpstrain.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bench-rows: $(BUILD)/bench_rows
	./$(BUILD)/bench_rows

# A sparse model as large as its config's tables, exported (make bench-export).
$(BUILD)/bench_export: bench/bench_export.c $(BUILD)/libpstrain.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The performance model's measured inputs on this machine (bench/calibrate.py:
# compute, bytes per step, server and exchange costs, latency, rows),
# 2-6 minutes, into bench/out/calibration.json; make bench-scale reads them.
CALIB ?= bench/out/calibration.json
bench-calibrate: deps ctr-data
	$(MAKE) $(BUILD)/pstrain $(BUILD)/bench_calib $(BUILD)/bench_rows
	$(PY) bench/calibrate.py --out $(CALIB)

# The performance model from those figures (bench/scale_model.py): BSP and ASP
# samples/s and scaling efficiency for 8..1024 trainer nodes at 10, 25 and
# 100 Gbit/s, the servers each needs for 90%; a table, bench/out/scale.png.
bench-scale: deps
	@[ -f $(CALIB) ] || $(MAKE) bench-calibrate
	$(PY) bench/scale_model.py --calib $(CALIB) --out bench/out

# How far another calibration (another day's, or one under load: OTHER=FILE)
# moves the table's efficiencies, each and the largest (exit 1 beyond 10 points).
OTHER ?= bench/out/calibration-loaded.json
bench-scale-compare: deps
	$(PY) bench/scale_model.py --calib $(CALIB) --compare $(OTHER)

# The model against real jobs on a test bed of its own (network namespaces
# psv-h*, beside make test's) with tbf-capped links (bench/validate.py, root,
# about 35 minutes): predicted and measured samples/s, one JSON line per
# configuration, into bench/out/validation.jsonl.
bench-validate: deps
	$(MAKE) $(BUILD)/pstrain
	@[ -f $(CALIB) ] || $(MAKE) bench-calibrate
	$(PY) bench/validate.py --calib $(CALIB)

$(BUILD)/dump_start: bench/dump_start.c $(BUILD)/libpstrain.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ONNX Runtime for Node (pinned in tests/onnx/package-lock.json), which the
# onnx suite runs the exported models with. Its install script would fetch GPU
# parts from outside the npm registry: ONNXRUNTIME_NODE_INSTALL=skip.
ONNX_NODE := tests/onnx/node_modules
$(ONNX_NODE): tests/onnx/package.json tests/onnx/package-lock.json | deps
	@command -v npm >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm; }
	ONNXRUNTIME_NODE_INSTALL=skip npm ci --prefix tests/onnx --no-audit --no-fund
	@touch $@

# mpirun refuses root unless told; containers and CI run as root.
MPIRUN ?= mpirun $(shell [ "$$(id -u)" = 0 ] && echo --allow-run-as-root) --oversubscribe

# The default job: the Fashion-MNIST CNN, 1 parameter server + 2 trainers,
# then the proof of its export: ONNX Runtime on model.onnx and pstrain predict
# on model.ckpt classify the 10,000 test images as the run reported.
run: deps $(ONNX_NODE)
	$(MAKE) $(BUILD)/pstrain
	$(MPIRUN) -np 3 ./$(BUILD)/pstrain --servers 1 --config configs/fashion_cnn.cfg
	PST_BIN=$(BUILD)/pstrain tests/onnx/verify_run.sh runs/fashion_cnn

# A synthetic click log for configs/criteo_dlrm.cfg: CTR_LINES lines from
# pstrain gen-ctr (seed 1, Criteo's cardinalities), the last CTR_TEST of them
# the test set, in data/ctr/.
CTR_LINES ?= 330000
CTR_TEST ?= 30000
ctr-data: data/ctr/train.txt
data/ctr/train.txt:
	$(MAKE) $(BUILD)/pstrain
	@mkdir -p data/ctr
	./$(BUILD)/pstrain gen-ctr --out data/ctr/all.txt --lines $(CTR_LINES) --seed 1
	head -n $$(( $(CTR_LINES) - $(CTR_TEST) )) data/ctr/all.txt > data/ctr/train.tmp && \
	  tail -n $(CTR_TEST) data/ctr/all.txt > data/ctr/test.txt && mv data/ctr/train.tmp $@
	rm -f data/ctr/all.txt

# A billion parameters: configs/criteo_1b.cfg (26 tables of 2,404,000 rows of
# dim 16) on 2 servers + 2 trainers over a synthetic log of CTR1B_LINES
# lines (the last 100,000 the test set) in data/ctr1b; bench/ctr_1b.py runs
# it, resumes it, runs it with 10M-parameter tables, and checks memory and
# speed (about 40 minutes on 2 cores).
CTR1B_LINES ?= 2100000
ctr-1b-data: data/ctr1b/train.txt
data/ctr1b/train.txt:
	$(MAKE) $(BUILD)/pstrain
	@mkdir -p data/ctr1b
	./$(BUILD)/pstrain gen-ctr --out data/ctr1b/all.txt --lines $(CTR1B_LINES) --seed 7
	head -n $$(( $(CTR1B_LINES) - 100000 )) data/ctr1b/all.txt > data/ctr1b/train.tmp && \
	  tail -n 100000 data/ctr1b/all.txt > data/ctr1b/test.txt && mv data/ctr1b/train.tmp $@
	rm -f data/ctr1b/all.txt
ctr-1b: deps ctr-1b-data
	$(MAKE) $(BUILD)/pstrain
	$(PY) bench/ctr_1b.py

# The export of a click-through model proved: ONNX Runtime on CTR_RUN's
# model.onnx against pstrain predict --criteo on its model.ckpt and tables,
# the first CTR_VERIFY lines of CTR_LOG, within 1e-5.
CTR_RUN ?= runs/criteo_dlrm
CTR_LOG ?= data/ctr/test.txt
CTR_VERIFY ?= 100000
verify-ctr-onnx: deps $(ONNX_NODE)
	$(MAKE) $(BUILD)/pstrain
	PST_BIN=$(BUILD)/pstrain tests/onnx/verify_ctr.sh $(CTR_RUN) $(CTR_LOG) $(CTR_VERIFY)

# The export of a model as large as configs/criteo_dlrm.cfg's tables (2.2 GB),
# timed (bench/bench_export.c), then proved on 100,000 lines.
bench-export: deps $(ONNX_NODE) ctr-data
	$(MAKE) $(BUILD)/pstrain $(BUILD)/bench_export
	./$(BUILD)/bench_export configs/criteo_dlrm.cfg runs/bench_export data/ctr/train.txt
	$(MAKE) verify-ctr-onnx CTR_RUN=runs/bench_export CTR_LOG=data/ctr/train.txt

# DLRM in pstrain against PyTorch (bench/torch_dlrm.py) on the same log, batch
# and threads: samples/s and test AUC after one epoch, at 1 and 2 threads.
bench-ctr: deps deps-py ctr-data
	$(MAKE) $(BUILD)/pstrain $(BUILD)/bench_gemm
	$(PY) bench/bench_ctr.py

# The same proof for any finished run: make verify-onnx RUN=runs/fashion_lstm
RUN ?= runs/fashion_cnn
verify-onnx: deps $(ONNX_NODE)
	$(MAKE) $(BUILD)/pstrain
	PST_BIN=$(BUILD)/pstrain tests/onnx/verify_run.sh $(RUN)

test: deps $(ONNX_NODE)
	$(MAKE) all
	./$(BUILD)/test_pstrain
	$(PY) tests/test_scale_model.py
	$(MAKE) test-cluster-if-possible

# Multi-host tests on a test bed of network namespaces (tests/cluster/): they
# need root and `ip netns`; `make test` runs them when it can and says why not.
test-cluster: deps
	$(MAKE) $(BUILD)/pstrain
	tests/cluster/multihost.sh $(BUILD)/pstrain

test-cluster-if-possible:
	@if why=$$(tests/cluster/testbed.sh check); then $(MAKE) test-cluster; else \
	  echo "make test: multi-host tests skipped: $$why (they need root and ip netns; make test-cluster)"; fi

# The test bed with a 1 Gbit/s cap per host: training speed, time to 89% and
# bytes per step with and without compression (root).
bench-cluster: deps
	$(MAKE) $(BUILD)/pstrain
	bench/bench_cluster.sh $(BUILD)/pstrain

# The suites under ASan and UBSan; the jobs they start (mpirun, predict)
# run build/pstrain, built here too so that a fresh clone has it.
test-asan: deps $(ONNX_NODE)
	$(MAKE) $(BUILD)/pstrain
	$(MAKE) ASAN=1 build-asan/test_pstrain
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ./build-asan/test_pstrain

# Regenerates the committed PyTorch reference tensors under tests/fixtures/.
fixtures: deps-py
	$(PY) tests/fixtures/make_torch_fixtures.py tests/fixtures
	$(PY) tests/fixtures/make_row_fixtures.py tests/fixtures

bench: deps deps-py
	$(MAKE) $(BUILD)/pstrain $(BUILD)/bench_proto $(BUILD)/bench_ctr_parse $(BUILD)/bench_gemm
	bench/run_bench.sh

# One epoch of the CNN and of the LSTM in pstrain and in PyTorch from pstrain's
# own initial weights and batches: the test accuracies must agree within half a
# point (CNN) and one point (LSTM). MODEL=cnn|lstm for one, SEED=N for a seed.
verify-torch: deps deps-py
	$(MAKE) $(BUILD)/pstrain $(BUILD)/dump_start
	@rc=0; for m in $(or $(MODEL),cnn lstm); do \
	  $(PY) bench/torch_trajectory.py --model $$m $(if $(SEED),--seed $(SEED)) || rc=1; done; exit $$rc

# The CNN's test accuracy after one epoch over seeds 0-29 in pstrain and in
# PyTorch with the same recipe and its own random numbers: medians, spreads,
# and how many seeds reach 87.5% (about 10 minutes; SEEDS=A-B, EPOCHS=E).
SEEDS ?= 30
EPOCHS ?= 1
seed-spread: deps deps-py
	$(MAKE) $(BUILD)/pstrain
	$(PY) bench/seed_spread.py --seeds $(SEEDS) --epochs $(EPOCHS)

# libFuzzer targets (tests/fuzz/): the header decoder and the server's
# request handler, built with clang, ASan and UBSan into build-fuzz/ from just
# the sources they need. `make fuzz` runs each for FUZZ_SECONDS (`make -j2
# fuzz`: both at once), starting from tests/fuzz/corpus/ and regress/, then
# merges what gave new coverage into tests/fuzz/corpus/; crashes are saved as
# build-fuzz/crashes/TARGET-*. `make fuzz-seeds` rewrites the seed inputs.
FUZZ_SECONDS ?= 600
FUZZ_CC ?= clang
FUZZ_DIR := build-fuzz
FUZZ_PKGS := msgpack zlib libcjson
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer -Wall -Wextra -Werror \
               -fsanitize=address,undefined -fno-sanitize-recover=undefined -I. \
               -Itests/fuzz $(shell pkg-config --cflags $(FUZZ_PKGS) 2>/dev/null)
FUZZ_LIBS := $(shell pkg-config --libs $(FUZZ_PKGS) 2>/dev/null) -lm
FUZZ_PS := ps/server.c ps/consistency.c ps/liveness.c ps/store.c ps/shard.c ps/sparse.c
FUZZ_SRC := common/net/wire.c common/util/err.c common/nn/optim.c common/nn/sgd.c common/nn/momentum.c \
            common/nn/adam.c common/nn/adagrad.c common/nn/rowwise_adagrad.c common/nn/rows.c common/nn/params.c common/util/rng.c \
            common/util/fsutil.c common/util/pool.c common/net/compress.c $(FUZZ_PS) export/checkpoint.c \
            export/ckptdir.c common/data/criteo.c tests/fuzz/harness.c tests/fuzz/criteo_check.c \
            tests/fuzz/stubs.c
FUZZ_OBJ := $(FUZZ_SRC:%.c=$(FUZZ_DIR)/%.o)
FUZZ_RUN := fuzz-wire fuzz-server fuzz-criteo

deps-fuzz:
	@missing=$$(for p in $(DEPS_FUZZ); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; fi

# the server reads the fuzz targets' own clock (stubs.c), which the harness advances
$(FUZZ_PS:%.c=$(FUZZ_DIR)/%.o): FUZZ_XFLAGS := -Dclock_gettime=fuzz_clock_gettime
$(FUZZ_DIR)/%.o: %.c $(wildcard common/*/*.h ps/*.h export/*.h tests/fuzz/*.h)
	@mkdir -p $(dir $@)
	@echo "  CLANG  $<"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_XFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(FUZZ_LIBS)

$(FUZZ_DIR)/gen_corpus: tests/fuzz/gen_corpus.c $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^ $(FUZZ_LIBS)

fuzz-build: deps deps-fuzz
	$(MAKE) $(FUZZ_DIR)/fuzz_wire $(FUZZ_DIR)/fuzz_server $(FUZZ_DIR)/fuzz_criteo \
	  $(FUZZ_DIR)/gen_corpus

fuzz-seeds: fuzz-build
	./$(FUZZ_DIR)/gen_corpus tests/fuzz/corpus

$(FUZZ_RUN): fuzz-%: fuzz-build
	@mkdir -p $(FUZZ_DIR)/corpus/$* $(FUZZ_DIR)/crashes tests/fuzz/corpus/$* tests/fuzz/regress/$*
	./$(FUZZ_DIR)/fuzz_$* -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=2048 \
	  -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/crashes/$*- \
	  $(FUZZ_DIR)/corpus/$* tests/fuzz/corpus/$* tests/fuzz/regress/$*
	./$(FUZZ_DIR)/fuzz_$* -merge=1 tests/fuzz/corpus/$* $(FUZZ_DIR)/corpus/$*

fuzz: $(FUZZ_RUN)

clean:
	rm -rf build build-asan build-fuzz
