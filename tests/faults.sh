#!/bin/bash
# faults.sh SCENARIO DIR [BIN] - a fault in the middle of a distributed job,
# and what must follow. Exit 0 when it went as it must; otherwise 1, with the
# reason and the logs. Scenarios:
#   server_kill   kill -9 the server of a 1+2 BSP job (mpirun --enable-recovery):
#                 the trainers stop within cluster.timeout_ms with a message naming
#                 the server's rank and host and exit non-zero (MPI_Abort with
#                 status 1: under --enable-recovery Open MPI 4.1.4's mpirun itself
#                 exits 0 whatever its ranks do, so the test reads the ranks' own
#                 "exit status 1" lines); without
#                 --enable-recovery mpirun ends the job at once, non-zero; and --resume
#                 DIR, from another working folder and without --out, finishes it in
#                 DIR (summary, model, metrics) to the accuracy of an undisturbed run,
#                 writing nothing into runs/
#   trainer_asp   kill -9 one of 3 trainers of an ASP job (--enable-recovery): the
#                 survivors finish the job and it reports the lost rank
#   lead_asp      kill -9 trainer 0 of the ASP job: the lowest trainer left takes its
#                 place at the end and writes the checkpoint, model and metrics, and
#                 the model it exports is the one whose accuracy it reports
#   trainer_bsp   the same in BSP: the job writes a checkpoint of the last complete
#                 step and stops non-zero; --resume finishes it
#   lead_bsp      kill -9 trainer 0 of a BSP job: trainer 1 writes the checkpoint
#                 of the last complete step in its place; --resume finishes the job
#   trainer_bsp_continue  the same in BSP with cluster.on_trainer_loss = "continue":
#                 the step completes with the survivors, who finish the job
#   sigterm       SIGTERM to trainer 0 of a 1+2 BSP job: it writes a checkpoint and
#                 exits 0; --resume finishes the job with the very parameters of an
#                 uninterrupted run
#   sigterm_local the same for single-process training
#   sigterm_epoch_end  SIGTERM to trainer 0, 6 times, of a BSP job whose epochs are
#                 2 steps long: a stop often comes at an epoch's last step, when
#                 trainer 1 may already wait in the epoch's barrier (a race that
#                 once left the job hanging); every job must stop, exit 0, and
#                 say where its checkpoint is
# The job: the test CNN on 3000 Fashion-MNIST images, long enough (15 epochs of 85
# steps) to be hit in the middle, with a periodic checkpoint every 40 steps and a
# 3 s timeout.
set -u
scenario=$1
dir=$2
bin=${3:-build/pstrain}
mkdir -p "$dir"
root=$([ "$(id -u)" = 0 ] && echo --allow-run-as-root)
mpirun="mpirun $root --oversubscribe"
cfg=$dir/faults.cfg
cat > "$cfg" <<'EOF'
name = "faults";
data = { limit = 3000; validation = 300; test_limit = 500; };
model = { input = [1, 28, 28];
  layers = ( { type = "conv2d"; filters = 8; kernel = 3; activation = "relu"; },
             { type = "maxpool2d"; pool = 2; }, { type = "flatten"; },
             { type = "dense"; units = 10; activation = "softmax"; } ); };
optimizer = { name = "adam"; };
train = { epochs = 15; batch = 32; seed = 4; log_every = 1000; };
cluster = { timeout_ms = 3000; };
checkpoint = { every_steps = 40; };
EOF
job=
fail() {
    [ -n "$job" ] && kill -9 "$job" 2> /dev/null
    echo "faults.sh $scenario: $*"
    for f in "$dir"/*.log; do echo "--- $f"; tail -n 30 "$f"; done
    exit 1
}
# the pid of a rank from cluster.json (written at start-up)
pid_of() {
    node -e 'const c = require(process.argv[1]);
             const r = c.ranks.find((x) => x.rank === Number(process.argv[2]));
             console.log(r ? r.pid : "")' "$(realpath "$1")/cluster.json" "$2"
}
# waits until run folder $1 has a complete checkpoint (at most 60 s)
wait_checkpoint() {
    for _ in $(seq 600); do
        ls "$1"/checkpoints/step-*/manifest.json > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "no checkpoint appeared in $1"
}
# the exported model of run folder $1 classifies the test images exactly as
# the run reported (ONNX Runtime and pstrain predict, the job's 500 images)
verify_model() {
    local data=/usr/share/datasets/fashion-mnist
    PST_BIN=$bin "$(dirname "$0")/onnx/verify_run.sh" "$1" "$data/t10k-images-idx3-ubyte.gz" \
        "$data/t10k-labels-idx1-ubyte.gz" 500 || fail "the exported model of $1 is not the one reported"
}
# test accuracy of a run (summary.json)
accuracy() {
    node -e 'console.log(require(process.argv[1]).test_accuracy)' "$(realpath "$1")/summary.json"
}
# kill_rank RANK LIMIT: once the job has a checkpoint, kill -9 RANK of it
# and wait at most LIMIT seconds for the job to end ($status)
kill_rank() {
    wait_checkpoint "$dir/run"
    kill -9 "$(pid_of "$dir/run" "$1")"
    finish "$2"
}
# check_accuracy WHO [NOTE]: prints the run's test accuracy and fails below 0.75
check_accuracy() {
    acc=$(accuracy "$dir/run")
    echo "$1: test accuracy $acc${2:-}"
    awk -v a="$acc" 'BEGIN { exit !(a > 0.75) }' || fail "$1 reached only $acc"
}
start() { # start NAME NP MPIRUN_OPTIONS PSTRAIN_ARGS...: the job in the background ($job)
    local name=$1 np=$2 opts=$3
    shift 3
    $mpirun $opts -np "$np" "$bin" --config "$cfg" --out "$dir/$name" --no-plot "$@" \
        > "$dir/$name.log" 2>&1 &
    job=$!
}
finish() { # waits for $job at most $1 seconds; its exit status in $status
    local limit=$1 t=0
    while kill -0 "$job" 2> /dev/null; do
        sleep 0.2
        t=$((t + 1))
        [ $t -gt $((limit * 5)) ] && { kill -9 "$job"; fail "the job hung (> $limit s)"; }
    done
    wait "$job"
    status=$?
}

case $scenario in
server_kill)
    start run 3 --enable-recovery --servers 1
    wait_checkpoint "$dir/run"
    t0=$(date +%s.%N)
    kill -9 "$(pid_of "$dir/run" 0)"
    finish 30
    t1=$(date +%s.%N)
    grep -q "server 0 (rank 0 on $(hostname)) did not answer within 3.0 s" "$dir/run.log" ||
        fail "no message naming the lost server"
    grep -q "rank [12] trainer [01]: exit status 1: ending the job" "$dir/run.log" ||
        fail "the trainers did not exit non-zero"
    echo "job ended $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s after the server was killed"
    # without --enable-recovery: mpirun ends the job at once, with a non-zero status
    start plain 3 "" --servers 1
    wait_checkpoint "$dir/plain"
    kill -9 "$(pid_of "$dir/plain" 0)"
    finish 30
    [ "$status" != 0 ] || fail "plain mpirun exited 0 after the server died"
    # resume on a fresh launch, from another working folder and without --out:
    # the job continues in the folder it was started with (--out DIR), and
    # writes nothing under the working folder's runs/
    $mpirun -np 3 "$bin" --servers 1 --config "$cfg" --out "$dir/whole" --no-plot \
        > "$dir/whole.log" 2>&1 || fail "the undisturbed job failed"
    mkdir -p "$dir/cwd"
    touch "$dir/before_resume"
    abs_bin=$(realpath "$bin")
    abs_run=$(realpath "$dir/run")
    (cd "$dir/cwd" && $mpirun -np 3 "$abs_bin" --servers 1 --resume "$abs_run" --no-plot) \
        > "$dir/resume.log" 2>&1 || fail "--resume failed"
    [ -e "$dir/cwd/runs" ] && fail "the resumed job wrote into runs/ of its working folder"
    for f in summary.json model.onnx model.ckpt metrics.csv; do
        [ "$dir/run/$f" -nt "$dir/before_resume" ] || fail "--resume did not write $dir/run/$f"
    done
    [ "$(grep -c '^[0-9]' "$dir/run/metrics.csv")" = 15 ] || fail "metrics.csv has not all 15 epochs"
    check_accuracy "resumed job"
    [ "$(accuracy "$dir/run")" = "$(accuracy "$dir/whole")" ] ||
        fail "resumed: $(accuracy "$dir/run"), undisturbed: $(accuracy "$dir/whole")"
    echo "resumed in $dir/run (no --out), as accurate as the undisturbed run; runs/ untouched"
    ;;
trainer_asp)
    start run 4 --enable-recovery --servers 1 --set cluster.consistency=asp
    kill_rank 3 90
    grep -q "the job lost 1 trainer(s), the first trainer 2 (rank 3), and finished with the survivors" \
        "$dir/run.log" || fail "the loss of rank 3 was not reported"
    grep -q "trainer 2 (rank 3 on $(hostname)) lost: nothing heard from it" "$dir/run.log" ||
        fail "the server did not name the lost trainer"
    check_accuracy "survivors finished" " (exit status $status)"
    verify_model "$dir/run"
    ;;
lead_asp)
    start run 4 --enable-recovery --servers 1 --set cluster.consistency=asp
    kill_rank 1 90
    # it takes over with its next pull once the server gave trainer 0 up, or,
    # if the job's steps were done by then, at the end
    grep -q "rank 2 trainer 1: trainer 0 (rank 1) was lost: this trainer \(leads the job from step\|writes the job's checkpoint, model and metrics in its place\)" \
        "$dir/run.log" || fail "trainer 1 did not take trainer 0's place"
    grep -q "the job lost 1 trainer(s), the first trainer 0 (rank 1), and finished with the survivors" \
        "$dir/run.log" || fail "the loss of trainer 0 was not reported"
    [ "$(grep -c '^[0-9]' "$dir/run/metrics.csv")" = 15 ] || fail "metrics.csv has not all 15 epochs"
    check_accuracy "trainer 1 finished the job in trainer 0's place"
    verify_model "$dir/run"
    ;;
lead_bsp)
    start run 4 --enable-recovery --servers 1
    kill_rank 1 30
    grep -q "rank 2 trainer 1: trainer 0 (rank 1) was lost: this trainer writes the job's checkpoint in its place" \
        "$dir/run.log" || fail "trainer 1 did not take trainer 0's place"
    grep -q "rank 2 trainer 1: the job stops: trainer 0 (rank 1 on $(hostname)) lost.*\(written to $dir/run/checkpoints; continue with --resume\|continue from the last periodic one\)" \
        "$dir/run.log" || fail "trainer 1 did not say where the checkpoint is"
    $mpirun -np 4 "$bin" --servers 1 --resume "$dir/run" --out "$dir/run" --no-plot \
        > "$dir/resume.log" 2>&1 || fail "--resume failed"
    check_accuracy "resumed job"
    ;;
trainer_bsp_continue)
    start run 4 --enable-recovery --servers 1 --set cluster.on_trainer_loss=continue
    kill_rank 2 90
    grep -q "trainer 1 (rank 2 on $(hostname)) lost: nothing heard from it.*; going on without it" \
        "$dir/run.log" || fail "the server did not go on without the lost trainer"
    grep -q "the job lost 1 trainer(s), the first trainer 1 (rank 2), and finished with the survivors" \
        "$dir/run.log" || fail "the loss of rank 2 was not reported"
    grep -q "exit status" "$dir/run.log" && fail "a rank exited non-zero"
    check_accuracy "survivors finished the BSP job"
    ;;
trainer_bsp)
    start run 3 --enable-recovery --servers 1
    kill_rank 2 30
    grep -q "trainer 1 (rank 2 on $(hostname)) lost" "$dir/run.log" || fail "no message naming the lost trainer"
    grep -q "rank 1 trainer 0: exit status 1: ending the job" "$dir/run.log" ||
        fail "trainer 0 did not exit non-zero"
    # a checkpoint of the last complete step, or (when the trainer died after
    # part of a step was applied) the word that the last periodic one is it
    grep -q "written to $dir/run/checkpoints; continue with --resume" "$dir/run.log" ||
        grep -q "no consistent checkpoint could be written; continue from the last periodic one" \
            "$dir/run.log" || fail "no checkpoint of the last complete step"
    $mpirun -np 3 "$bin" --servers 1 --resume "$dir/run" --out "$dir/run" --no-plot \
        > "$dir/resume.log" 2>&1 || fail "--resume failed"
    check_accuracy "resumed job"
    ;;
sigterm)
    $mpirun -np 3 "$bin" --servers 1 --config "$cfg" --out "$dir/whole" --no-plot \
        > "$dir/whole.log" 2>&1 || fail "the uninterrupted job failed"
    start run 3 "" --servers 1
    wait_checkpoint "$dir/run"
    kill -TERM "$(pid_of "$dir/run" 1)"
    finish 30
    [ "$status" = 0 ] || fail "exit status $status after SIGTERM, expected 0"
    grep -q "stopped at step [0-9]* on request: checkpoint written" "$dir/run.log" ||
        fail "no checkpoint message"
    $mpirun -np 3 "$bin" --servers 1 --resume "$dir/run" --out "$dir/run" --no-plot \
        > "$dir/resume.log" 2>&1 || fail "--resume failed"
    cmp -s "$dir/run/model.ckpt" "$dir/whole/model.ckpt" ||
        fail "the resumed job's model differs from the uninterrupted one's"
    echo "stopped and resumed: model.ckpt equals the uninterrupted run's, byte for byte"
    ;;
sigterm_local)
    # single-process training: SIGTERM, checkpoint, resume, the same model
    "$bin" --local --config "$cfg" --out "$dir/whole" --no-plot > "$dir/whole.log" 2>&1 ||
        fail "the uninterrupted run failed"
    "$bin" --local --config "$cfg" --out "$dir/run" --no-plot > "$dir/run.log" 2>&1 &
    job=$!
    wait_checkpoint "$dir/run"
    kill -TERM "$job"
    finish 30
    [ "$status" = 0 ] || fail "exit status $status after SIGTERM, expected 0"
    grep -q "stopped by a signal at step [0-9]*: checkpoint written" "$dir/run.log" ||
        fail "no checkpoint message"
    "$bin" --local --resume "$dir/run" --out "$dir/run" --no-plot > "$dir/resume.log" 2>&1 ||
        fail "--resume failed"
    cmp -s "$dir/run/model.ckpt" "$dir/whole/model.ckpt" ||
        fail "the resumed run's model differs from the uninterrupted one's"
    echo "stopped and resumed: model.ckpt equals the uninterrupted run's, byte for byte"
    ;;
sigterm_epoch_end)
    # 64 training samples: 2 steps per epoch, with a tiny evaluation, so that
    # the signal lands in the middle of an epoch about half the time
    sed -e 's/limit = 3000; validation = 300; test_limit = 500;/limit = 96; validation = 32; test_limit = 32;/' \
        -e 's/epochs = 15;/epochs = 100000;/' -e 's/every_steps = 40;/every_steps = 0; every_seconds = 0;/' \
        "$cfg" > "$dir/short.cfg"
    cfg=$dir/short.cfg
    odd=0
    for i in 1 2 3 4 5 6; do
        rm -rf "$dir/run"
        start run 3 "" --servers 1
        for _ in $(seq 300); do [ -f "$dir/run/cluster.json" ] && break; sleep 0.1; done
        sleep "0.$((RANDOM % 9 + 1))"
        kill -TERM "$(pid_of "$dir/run" 1)"
        finish 20
        [ "$status" = 0 ] || fail "round $i: exit status $status after SIGTERM, expected 0"
        step=$(sed -n 's/.*stopped at step \([0-9]*\) on request: checkpoint written.*/\1/p' "$dir/run.log")
        [ -n "$step" ] || fail "round $i: no checkpoint message"
        [ -f "$dir/run/checkpoints/step-$(printf %09d "$step")/manifest.json" ] ||
            fail "round $i: no checkpoint of step $step"
        odd=$((odd + step % 2))
    done
    echo "6 stops, $odd of them at an epoch's last step: each exited 0 with its checkpoint"
    ;;
*)
    echo "faults.sh: unknown scenario $scenario" >&2
    exit 2
    ;;
esac
exit 0
