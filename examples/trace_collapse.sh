#!/usr/bin/env sh
# Reasoning-trace collapse, in miniature: a model that learned to write its reasoning is then
# fine-tuned on data without traces, once with the CE on the empty reasoning section (keep) and
# once with it masked (mask). Answer metrics stay high in both; the share of valid, sound traces
# the model writes is what tells them apart (docs/finetune.md, "Reasoning traces, measured").
#
#   sh examples/trace_collapse.sh        # about 10 + 2 x 4 minutes on 2 CPU cores
#   SEED=1 STAGE2_STEPS=500 OUT=runs/collapse-1 sh examples/trace_collapse.sh
set -eu
SEED=${SEED:-0}
STEPS=${STEPS:-1000}
STAGE2_STEPS=${STAGE2_STEPS:-300}
OUT=${OUT:-runs/collapse}
mkdir -p "$OUT"
# stage 1: learn the task and the gold traces from scratch (embedded model)
constraintc finetune --seed "$SEED" --steps "$STEPS" --trace keep --no-progress --output-dir "$OUT/stage1-keep"
# stage 2 data: the same task, records without a trace field
constraintc data transitivity --split train --n 4000 --seed 11 -o "$OUT/no-traces.jsonl"
for mode in keep mask; do
  constraintc finetune --model "$OUT/stage1-keep/model" --finetune full --threads 1 --lr 1e-3 \
    --steps "$STAGE2_STEPS" --seed "$SEED" --data "$OUT/no-traces.jsonl" --trace "$mode" \
    --no-progress --output-dir "$OUT/stage2-$mode"
done
python "$(dirname "$0")/compare_runs.py" "$OUT/stage1-keep" "$OUT/stage2-keep" "$OUT/stage2-mask"
