#!/usr/bin/env bash
# The runs that produced the committed full results (see the reports beside this script for the
# machine each ran on). On a machine without network, wheels in .whl are installed first.
#
#   WORKERS=15 bash experiments/results/run_all.sh compare   # full comparison, 100 episodes
#   WORKERS=15 bash experiments/results/run_all.sh gpu       # GPU training check + bench train
#   WORKERS=15 bash experiments/results/run_all.sh curve     # BC vs DAgger learning curves
#
# EPISODES=N shortens every evaluation (a dry run), CURVE_CONFIG picks another curve recipe,
# CNN the checkpoint compared. What to keep is packed into $OUT (default runs/device-out).
set -uo pipefail
OUT=${OUT:-runs/results-out}
WORK=${WORK:-runs/results-work}
PY=${PY:-python3}
W=${WORKERS:-15}
CNN=${CNN:-runs/bc50k/checkpoints/best.ckpt}
mkdir -p "$OUT" "$WORK"
if [ -d .whl ] && [ -z "${SKIP_WHEELS:-}" ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export WANDB_MODE=offline PYTHONUNBUFFERED=1 MPLBACKEND=Agg
episodes=()
[ -n "${EPISODES:-}" ] && episodes=(--episodes "$EPISODES")
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"
  echo "$(nproc) CPU cores"; "$PY" --version; date -u; } | tee -a "$OUT/device.txt"

pack() {  # pack the small outputs of folder $1 into $OUT/$2.tgz
  (cd "$1" && find . \( -name '*.md' -o -name '*.json' -o -name '*.png' -o -name '*.yaml' \
    -o -name '*.csv' -o -name '*.txt' \) -not -path './data/*' -not -path '*/wandb/*' \
    -print0 | tar czf - --null -T -) > "$OUT/$2.tgz"
}

for step in "$@"; do
  started=$(date +%s)
  case "$step" in
    compare)
      "$PY" -m driving compare --config experiments/compare_highway.yaml --workers "$W" \
        --no-wandb --out "$WORK/compare" "${episodes[@]}" \
        --agents "modular-oracle,modular-vision,idm,keep-lane,random,cnn:$CNN" 2>&1 \
        | grep -v -E 'ep/s|it/s' | tee "$OUT/compare.log"
      pack "$WORK/compare" compare ;;
    gpu)
      data="$WORK/gpu-data"
      [ -d "$data" ] || "$PY" -m driving collect --agent modular-oracle --episodes "${GPU_EPISODES:-60}" \
        --workers "$W" --noise-steer 0.02 --out "$data" --quiet
      "$PY" -m driving bench train --data "$data" --precision bf16-mixed --workers 4 \
        2>&1 | tee "$OUT/bench_train_gpu.log"
      "$PY" -m driving fit --config experiments/bc_gpu.yaml --data.root "$data" \
        --trainer.max_epochs 3 --trainer.default_root_dir "$WORK/bc_gpu" \
        --trainer.logger lightning.pytorch.loggers.CSVLogger \
        --trainer.logger.save_dir "$WORK/bc_gpu" 2>&1 | grep -v -E 'it/s' \
        | tail -40 | tee "$OUT/fit_gpu.log" ;;
    curve)
      "$PY" -m driving curve --config "${CURVE_CONFIG:-experiments/curve_highway.yaml}" \
        --workers "$W" --out "$WORK/curve" "${episodes[@]}" 2>&1 \
        | grep -v -E 'ep/s|it/s' | tail -80 | tee "$OUT/curve.log"
      pack "$WORK/curve" curve ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
  echo "$step took $(( $(date +%s) - started )) s" | tee -a "$OUT/device.txt"
done
