#!/usr/bin/env bash
# The traces-only first stage of examples/configs/finetune_two_stage.toml over several seeds on
# one GPU, two ways side by side (docs/finetune.md, "One GPU, 24 first stages"). Its steps on
# `mix` only: the file's closing steps on `mix_wide` (pretrain_then_*) are left out, since the
# question here is when the lookups come, and they come on `mix`.
#
#   plain:   plain positions throughout (the file as it is);
#   after:   plain positions until the mean trace CE of the last 50 steps falls below 0.1 (the
#            lookups have come), then positions stretched by [1, 3] (--pretrain-stretch-after).
#
# Both arms of a seed compute the same steps until the switch (bit for bit on a CPU; on a GPU,
# which is not bit-reproducible, they drift apart and may switch at other steps). Steps:
#   1. calibration: every run for 30 traces-only steps (this also proves the CUDA path); their
#      median seconds a step under that load sets how many steps fit TRAIN_SECONDS (a multiple of
#      250, at most 2500);
#   2. the runs (`--steps 1 --no-final-eval`: the first stage alone, its model saved as
#      RUN/model-traces), all at once;
#   3. each traces-only model writes its reasoning (160 tokens) on DATA and is scored raw and
#      through the rules (`constraintc eval --traces 160 --rules transitivity --consistent`).
# Then examples/first_stages.py prints the table.
#
# usage: examples/gpu_first_stages.sh OUTDIR DATA.jsonl [TRAIN_SECONDS [SEEDS]]
#   (defaults: 300 s of training, seeds 0,1,2,3,4,5,6,7: 16 runs at once, one CPU thread each;
#   STEPS=N in the environment sets the step count (no calibration); ARMS="plain" runs one arm; ACCUM=1 trains each
#   step's 32 graphs as one padded batch instead of 4 micro-batches: the same loss, fewer kernel
#   launches on a GPU); EVAL_SECONDS (default 300) bounds each evaluation)
set -uo pipefail
usage="usage: examples/gpu_first_stages.sh OUTDIR DATA.jsonl [TRAIN_SECONDS [SEEDS]]"
out=${1:?$usage}
data=${2:?$usage}
budget=${3:-300}
seeds=${4:-0,1,2,3,4,5,6,7}
here=$(cd "$(dirname "$0")/.." && pwd)
cfg="$here/examples/configs/finetune_two_stage.toml"
[ -f "$data" ] || { echo "error: no data file at $data" >&2; exit 2; }
mkdir -p "$out"
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1

# start every run of the grid: ARM SEED STEPS DIR
start() {
    local arm=$1 seed=$2 steps=$3 dir=$4 extra=()
    case "$arm" in
        plain) ;;
        after) extra=(--pretrain-position-stretch 3 --pretrain-stretch-after 0.1) ;;
        *) echo "error: ARMS: unknown arm '$arm' (expected plain and/or after)" >&2; return 2 ;;
    esac
    constraintc finetune --config "$cfg" --seed "$seed" --pretrain-steps "$steps" --pretrain-then-split '' \
        --pretrain-then-steps 0 --steps 1 \
        --no-final-eval --no-plots --no-progress --threads 1 --checkpoint-every 250 --pretrain-accum "${ACCUM:-4}" \
        --output-dir "$dir/$arm-s$seed" "${extra[@]}" > "$dir/$arm-s$seed.log" 2>&1 &
}
grid() {  # STEPS DIR: all runs at once, wait for them
    local pids=(); mkdir -p "$2"
    for seed in ${seeds//,/ }; do
        for arm in ${ARMS:-plain after}; do start "$arm" "$seed" "$1" "$2" || exit 2; pids+=($!); done
    done
    local failed=0
    for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
    return "$failed"
}

t0=$(date +%s)
if [ -n "${STEPS:-}" ]; then
    steps=$STEPS
elif ! grid 30 "$out/calibration"; then
    echo "calibration failed:"; tail -n 20 "$out"/calibration/*.log; exit 1
else
    spp=$(python3 - "$out/calibration" <<'EOF'
import json, pathlib, statistics, sys
rows = [json.loads(l) for p in pathlib.Path(sys.argv[1]).glob("*/metrics.jsonl") for l in p.read_text().splitlines()]
late = [r["seconds"] for r in rows if r.get("stage") == "traces" and r["step"] > 10]
print(f"{statistics.median(late):.4f}")
EOF
)
    steps=$(python3 -c "print(min(2500, max(250, int($budget * 0.9 / $spp) // 250 * 250)))")
    echo "calibration: $(( $(date +%s) - t0 )) s, ${spp} s a traces-only step with every run at once -> $steps steps"
fi

t1=$(date +%s)
grid "$steps" "$out/runs" || echo "warning: $? run(s) failed (their logs: $out/runs/*.log)"
echo "training: $(( $(date +%s) - t1 )) s"

t2=$(date +%s)
pids=()
for run in "$out"/runs/*/; do
    run=${run%/}
    [ -d "$run/model-traces" ] || continue
    timeout "${EVAL_SECONDS:-300}" constraintc eval --data "$data" --model "$run/model-traces" --traces 160 --rules transitivity --consistent \
        --batch-size 64 --no-plots --no-progress --output-dir "$run/eval" > "$run/eval.log" 2>&1 &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
echo "evaluation: $(( $(date +%s) - t2 )) s"
python3 "$here/examples/first_stages.py" "$out/runs"
