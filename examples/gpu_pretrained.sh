#!/usr/bin/env bash
# Real pretrained weights and d-separation on one GPU, in one time budget (docs/finetune.md quotes
# what it measured):
#
#   1. SmolLM2-135M-Instruct (the GGUF given) with LoRA, examples/configs/finetune_smollm2_gpu.toml:
#      cross-entropy only (ce) against cross-entropy + the semantic loss (sl), seeds 0,1,2;
#   2. at the same time the d-separation recipe (examples/configs/finetune_dsep.toml) for the
#      embedded model, ce against sl, seeds 0,1,2.
#
# All 12 runs share the GPU and train until the time budget (each up to a step count no run
# reaches there). The learning rate is constant after the warm-up, so a run that the
# deadline interrupts (examples/sweep.py --deadline: Ctrl-C, then the final evaluation of its
# newest checkpoint) has had the schedule it would have had in a longer run, only fewer steps.
#
# usage: examples/gpu_pretrained.sh OUTDIR GGUF [TRAIN_SECONDS [SWEEP ARGS...]]
#   (default 360 s of training; further arguments go to both sweeps last, e.g. --set steps=2)
set -uo pipefail
usage="usage: examples/gpu_pretrained.sh OUTDIR GGUF [TRAIN_SECONDS [SWEEP ARGS...]]"
out=${1:?$usage}
gguf=${2:?$usage}
budget=${3:-360}
shift $(( $# < 3 ? $# : 3 ))
here=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$gguf" ] || { echo "error: no GGUF file at $gguf" >&2; exit 2; }
mkdir -p "$out"

python3 "$here/examples/sweep.py" --config "$here/examples/configs/finetune_smollm2_gpu.toml" \
    --seeds 0,1,2 --conditions sl,ce --models "$gguf" --jobs 6 --threads 1 --deadline "$budget" \
    --set steps=4000 --output-dir "$out/smollm2" "$@" > "$out/smollm2.txt" 2>&1 &
smol=$!

python3 "$here/examples/sweep.py" --config "$here/examples/configs/finetune_dsep.toml" \
    --seeds 0,1,2 --conditions sl,ce --jobs 6 --threads 1 --deadline "$budget" \
    --set steps=6000 --set lr=6e-3 --set lr_schedule=constant --set checkpoint_every=100 \
    --output-dir "$out/dsep" "$@" > "$out/dsep.txt" 2>&1 &
dsep=$!

wait $smol; rs=$?
wait $dsep; rd=$?
echo "== SmolLM2 (rc $rs)"; cat "$out/smollm2.txt"
echo "== d-separation (rc $rd)"; cat "$out/dsep.txt"
[ $rs -eq 0 ] && [ $rd -eq 0 ]
