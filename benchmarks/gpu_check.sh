#!/usr/bin/env bash
# The GPU checks, for a machine with a CUDA GPU, in under 8 minutes; one JSON at the end:
#
#     bash benchmarks/gpu_check.sh [OUT_DIR]        # default: $OUT, else ./gpu-check
#
#   1. benchmarks/overhead.py --device cuda (the three workloads, one run of each);
#   2. the bf16 + compile run: configs/cifar10-fast.yaml (bf16-mixed, compile, channels_last,
#      TF32, loader: memory) with --gpu 0 on both entrypoints, its time and test/acc (on
#      load/cifar10 when it is there, else on random images in CIFAR-10's format: then the time
#      counts, the accuracy does not);
#   3. --gpu 0 on both entrypoints in float32: configs/digits.yaml, 5 epochs.
# Every step has its own time limit; a failed step is recorded (exit status, the end of its
# output) and the next one runs. The result: OUT_DIR/gpu_check.json.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
OUT_DIR=${1:-${OUT:-gpu-check}}
mkdir -p "$OUT_DIR/logs"
SAVE=$(mktemp -d)
trap 'rm -rf "$SAVE"' EXIT

step() {  # step NAME SECONDS COMMAND...: its exit status, seconds and log
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" >"$OUT_DIR/logs/$name.log" 2>&1
  local status=$?
  echo "$name $status $((SECONDS - start))" >>"$OUT_DIR/steps.txt"
  echo "$(date +%H:%M:%S) $name: exit $status, $((SECONDS - start)) s" >&2
}

: >"$OUT_DIR/steps.txt"
"$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA GPU"; print(torch.cuda.get_device_name(0))' \
  >"$OUT_DIR/logs/device.log" 2>&1 || { cat "$OUT_DIR/logs/device.log"; exit 1; }

# one run of each path and epoch count: 18 processes of a few seconds, about 3 minutes (the
# plain Lightning script's path left out, for the time)
step benchmark 270 "$PY" benchmarks/overhead.py --device cuda --repeats 1 \
  --paths handwritten,train_py,train_pl --out "$OUT_DIR/benchmark.json"

CIFAR=load/cifar10
if [ ! -f "$CIFAR/cifar-10-batches-py/test_batch" ]; then  # random images, the real format
  CIFAR=$SAVE/cifar10
  "$PY" -c "import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; \
import overhead; overhead.write_cifar10(Path('$CIFAR'), 50000, 10000)"
fi
for script in train.py train_pl.py; do
  step "cifar10_fast_$script" 75 "$PY" "$script" --config configs/cifar10-fast.yaml --gpu 0 \
    --name "fast-$script" --save-dir "$SAVE" "data_module.args.root_dir=$CIFAR" \
    +trainer_params.enable_progress_bar=false
  step "digits_gpu_$script" 30 "$PY" "$script" --config configs/digits.yaml --gpu 0 \
    --name "digits-$script" --save-dir "$SAVE" trainer_params.max_epochs=5 \
    +trainer_params.enable_progress_bar=false
done

CIFAR_DATA=$([ "$CIFAR" = load/cifar10 ] && echo real || echo random) \
  "$PY" - "$OUT_DIR" "$SAVE" <<'EOF'
"""Every step's exit status, seconds, log.txt's first-step and last epoch lines, and the
benchmark's JSON, in OUT_DIR/gpu_check.json."""
import json, os, re, sys, time
from pathlib import Path
out, save = Path(sys.argv[1]), Path(sys.argv[2])
runs = {'fast-': 'cifar10_fast_', 'digits-': 'digits_gpu_'}
report = {'date': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
          'device': (out / 'logs' / 'device.log').read_text().strip(),
          'cifar10_data': os.environ['CIFAR_DATA'], 'steps': {}}
for line in (out / 'steps.txt').read_text().splitlines():
    name, status, seconds = line.split()
    log = (out / 'logs' / f'{name}.log').read_text(errors='replace')
    entry = {'exit': int(status), 'seconds': int(seconds)}
    if int(status):
        entry['output_tail'] = log[-1500:]
    run = next((save / (prefix + name[len(step):]) for prefix, step in runs.items()
                if name.startswith(step)), None)
    if run is not None and (run / 'log.txt').is_file():
        lines = (run / 'log.txt').read_text().splitlines()
        entry['first_step'] = next((l for l in lines if l.startswith('first step')), None)
        entry['last_epoch'] = next((l for l in reversed(lines) if l.startswith('epoch ')), None)
    entry['test'] = [l for l in log.splitlines() if re.match(r'test/\w+ ', l)][-1:]
    report['steps'][name] = entry
bench = out / 'benchmark.json'
report['benchmark'] = json.loads(bench.read_text()) if bench.is_file() else None
(out / 'gpu_check.json').write_text(json.dumps(report, indent=2) + '\n')
print(f'{out}/gpu_check.json:', ', '.join(f"{n} exit {s['exit']}" for n, s in report['steps'].items()))
EOF
