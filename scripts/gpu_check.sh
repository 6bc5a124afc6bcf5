#!/usr/bin/env bash
# Checks for a machine with a CUDA GPU (the project's own machines have none):
#   1. expert demonstrations collected on every core (frames/s), and the collection and CNN
#      evaluation benchmarks with 1, 4, 8 and 16 workers (speed-ups side by side);
#   2. training throughput on the GPU (fp32 and bf16-mixed) beside the CPU, Lightning beside a
#      bare PyTorch loop (driving bench train);
#   3. a DAgger fit (experiments/dagger_highway.yaml, shortened): training and the rounds'
#      batched inference on the GPU, with no flag asking for it;
#   4. the whole test suite, with the GPU visible (accelerator "auto" picks it).
# Usage, from the project root with the project importable (its venv, or PYTHONPATH):
#   bash scripts/gpu_check.sh [OUT [PYTEST ARGS...]]   # OUT: logs and data (runs/gpu_check)
# PYTHON picks the interpreter (default python); GPU_CHECK_CPU=1 rehearses it without a GPU.
set -euo pipefail
out=${1:-runs/gpu_check}
py=${PYTHON:-python}
cores=$(nproc)
mkdir -p "$out"
export WANDB_MODE=${WANDB_MODE:-offline} PYTHONUNBUFFERED=1

$py - <<'EOF'
import os, sys, torch
if not torch.cuda.is_available() and os.environ.get("GPU_CHECK_CPU") != "1":
    sys.exit("gpu_check: error: no CUDA device (GPU_CHECK_CPU=1 rehearses without one)")
name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"gpu_check: torch {torch.__version__}, GPU {name}, {os.cpu_count()} CPU cores")
EOF

echo "== 1. collect: 24 expert episodes on $cores workers (it prints its frames/s)"
$py -m driving collect --agent modular-oracle --episodes 24 --workers "$cores" \
  --noise-steer 0.02 --out "$out/data" --quiet

echo "== 1b. bench collect and bench evaluate with 1, 4, 8, 16 workers"
$py -m driving bench collect --episodes 32 --frames 2000 --counts 1 4 8 16 \
  --json "$out/bench_collect.json"
$py -m driving bench evaluate --episodes 32 --counts 1 4 8 16 --json "$out/bench_evaluate.json"

echo "== 2. bench train (GPU fp32, GPU bf16-mixed, then CPU; batch 32 as bc_cpu_small.yaml)"
$py -m driving bench train --data "$out/data" --steps 100 --repeats 2 --no-epoch
$py -m driving bench train --data "$out/data" --steps 100 --repeats 2 --no-epoch \
  --precision bf16-mixed
$py -m driving bench train --data "$out/data" --batch-size 256 --steps 50 --repeats 2 \
  --no-epoch --precision bf16-mixed --workers 4
CUDA_VISIBLE_DEVICES="" $py -m driving bench train --data "$out/data" --steps 30 \
  --repeats 1 --no-epoch

echo "== 3. DAgger fit: 2 epochs, a round of 8 episodes after each"
$py - "$out" "$cores" <<'EOF'
import sys, yaml
out, cores = sys.argv[1], int(sys.argv[2])
config = yaml.safe_load(open("experiments/dagger_highway.yaml"))
config["trainer"].update(max_epochs=2, limit_train_batches=100, default_root_dir=f"{out}/dagger")
config["trainer"]["logger"]["init_args"]["save_dir"] = f"{out}/dagger"
for callback in config["trainer"]["callbacks"]:
    args = callback["init_args"]
    if callback["class_path"].endswith("ModelCheckpoint"):
        args["dirpath"] = f"{out}/dagger/checkpoints"
    else:
        args.update(rounds=2, every_n_epochs=1, episodes_per_round=8, workers=min(8, cores))
config["data"]["root"] = f"{out}/data"
yaml.safe_dump(config, open(f"{out}/dagger.yaml", "w"))
EOF
$py -m driving fit --config "$out/dagger.yaml" > "$out/dagger.log" 2>&1 \
  || { tail -n 30 "$out/dagger.log"; exit 1; }
tr '\r' '\n' < "$out/dagger.log" | grep -E "GPU available|DAgger round.*100%" | tail -n 8
$py -m driving data info "$out/data" | tail -n 6

echo "== 4. the test suite, GPU visible"
parallel=()
if $py -c "import xdist" 2>/dev/null; then parallel=(-n "$(( cores > 12 ? 12 : cores ))"); fi
$py -m pytest -q "${parallel[@]}" -p no:cacheprovider "${@:2}" 2>&1 | tee "$out/pytest.log" \
  | tail -n 25
