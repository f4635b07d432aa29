#!/usr/bin/env sh
# Cross-entropy alone vs cross-entropy + semantic loss, over several seeds (when learning takes
# off depends on the seed, so compare conditions over at least 3 seeds), then one table of
# balanced accuracy per evaluation split (the transfer splits by default) for every run.
#
#   sh examples/finetune_seeds.sh                                   # the default run, seeds 0 1 2
#   CONFIG=examples/configs/finetune_transfer.toml sh examples/finetune_seeds.sh
#   SEEDS="0 1 2 3 4" EXTRA="--steps 1500" sh examples/finetune_seeds.sh
#   TRACES="keep mask" sh examples/finetune_seeds.sh   # also CE + SL with --trace keep / mask
set -eu
SEEDS=${SEEDS:-"0 1 2"}
OUT=${OUT:-runs/seeds}
TRACES=${TRACES:-}
EXTRA=${EXTRA:-}
CONFIG=${CONFIG:-}
cfg=""
if [ -n "$CONFIG" ]; then cfg="--config $CONFIG"; fi
for seed in $SEEDS; do
  # shellcheck disable=SC2086
  constraintc finetune $cfg $EXTRA --seed "$seed" --no-progress --overwrite --output-dir "$OUT/ce-sl-$seed"
  # shellcheck disable=SC2086
  constraintc finetune $cfg $EXTRA --seed "$seed" --no-progress --overwrite --lambda-schedule none --output-dir "$OUT/ce-$seed"
  for trace in $TRACES; do
    # shellcheck disable=SC2086
    constraintc finetune $cfg $EXTRA --seed "$seed" --no-progress --overwrite --trace "$trace" --output-dir "$OUT/trace-$trace-$seed"
  done
done
python "$(dirname "$0")/compare_runs.py" --split all "$OUT"/*-*
