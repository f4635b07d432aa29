#!/usr/bin/env bash
# The measurements on one GPU that docs/finetune.md ("On one GPU") and docs/performance.md quote,
# in one go, sized to a time budget:
#
#   1. calibration: the 12 runs of step 3 start at once for 40 steps, no evaluation; their median
#      seconds per step under that load sets how many steps fit the budget (this also proves the
#      CUDA path before the long part starts: a failure here stops the script);
#   2. benchmarks/bench_gpu.py: the Triton kernel against the torch reference (checked, timed);
#   3. the transfer recipe (examples/configs/finetune_transfer.toml) over seeds 0,1,2, with the
#      semantic loss (sl) and cross-entropy only (ce), for the embedded model (RoPE) and its NoPE
#      variant (examples/configs/embedded_nope.toml): 12 runs at once on the one GPU, each to the
#      calibrated step count, interrupted and evaluated at their newest checkpoint if the budget
#      runs out (examples/sweep.py --deadline).
#
# usage: examples/gpu_sweep.sh OUTDIR [TRAIN_SECONDS]      (default 330 s for step 3)
set -uo pipefail
out=${1:?usage: examples/gpu_sweep.sh OUTDIR [TRAIN_SECONDS]}
budget=${2:-330}
here=$(cd "$(dirname "$0")/.." && pwd)
cfg="$here/examples/configs/finetune_transfer.toml"
models="embedded,$here/examples/configs/embedded_nope.toml"
mkdir -p "$out"
sweep() { python3 "$here/examples/sweep.py" --config "$cfg" --seeds 0,1,2 --conditions sl,ce --models "$models" \
          --jobs 12 --threads 1 "$@"; }

t0=$(date +%s)
sweep --set steps=40 --set final_eval=false --set plots=false --set eval_every=40 \
      --output-dir "$out/calibration" > "$out/calibration.txt" 2>&1
spp=$(python3 - "$out/calibration" <<'EOF'
import json, pathlib, statistics, sys
rows = [json.loads(l) for p in pathlib.Path(sys.argv[1]).glob("*/metrics.jsonl") for l in p.read_text().splitlines()]
late = [r["seconds"] for r in rows if r["step"] > 10]
print(f"{statistics.median(late):.4f}" if len(late) >= 12 * 20 else "")
EOF
)
if [ -z "$spp" ]; then
    echo "calibration failed: not every run trained 40 steps"; tail -n 30 "$out"/calibration/*.log "$out/calibration.txt"
    exit 1
fi
calibration=$(( $(date +%s) - t0 ))
# 80% of the budget after setup and the final evaluation (about 60 s), in whole hundreds
steps=$(python3 -c "print(max(100, int(($budget - 60) * 0.8 / $spp) // 100 * 100))")
echo "calibration: ${calibration}s, ${spp}s per step with 12 runs at once -> ${steps} steps"

timeout 120 python3 "$here/benchmarks/bench_gpu.py" --markdown 2>&1 | tee "$out/bench_gpu.txt"

sweep --set steps="$steps" --set checkpoint_every=100 --deadline "$budget" --output-dir "$out/runs" 2>&1 | tee "$out/sweep.txt"
