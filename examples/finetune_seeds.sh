#!/usr/bin/env sh
# Cross-entropy alone vs cross-entropy + semantic loss, over several seeds (the design notes: the
# moment learning takes off depends on the seed, so compare conditions over at least 3 seeds).
#
#   sh examples/finetune_seeds.sh            # seeds 0 1 2, about 5 minutes per run on 2 cores
#   SEEDS="0 1 2 3 4" STEPS=1500 sh examples/finetune_seeds.sh
#   TRACES="keep mask" sh examples/finetune_seeds.sh   # also CE + SL with --trace keep / mask
set -eu
SEEDS=${SEEDS:-"0 1 2"}
STEPS=${STEPS:-1000}
OUT=${OUT:-runs/seeds}
TRACES=${TRACES:-}
for seed in $SEEDS; do
  constraintc finetune --seed "$seed" --steps "$STEPS" --no-progress --output-dir "$OUT/ce-sl-$seed"
  constraintc finetune --seed "$seed" --steps "$STEPS" --no-progress --lambda-schedule none --output-dir "$OUT/ce-$seed"
  for trace in $TRACES; do
    constraintc finetune --seed "$seed" --steps "$STEPS" --no-progress --trace "$trace" --output-dir "$OUT/trace-$trace-$seed"
  done
done
python "$(dirname "$0")/compare_runs.py" --split transitivity/train "$OUT"/*-*
