#!/usr/bin/env bash
# floe against PyTorch on this machine, side by side in one run (issue 21): the same ViT
# (depth 6, dim 64, heads 4, mlp 2, patch 4 = floe's default), batch 128, AdamW, Fashion-MNIST,
# PyTorch 1.13.1 from Debian (/usr/bin/python3, the scripts beside this one). Four layouts:
#   single1  one device, 1 intra-op thread       (PyTorch: one process, 1 thread)
#   single2  one device, 2 intra-op threads      (PyTorch: one process, 2 threads)
#   pipe     K=2 M=4 pipeline on 2 devices       (PyTorch: Pipe over 2 partitions)
#   dp       K=1 R=2 data parallel on 2 devices  (PyTorch: DDP, 2 processes, gloo)
# Rounds alternate floe and PyTorch (floe first in odd rounds, PyTorch first in even ones); the
# table gives each side's median and the ratio of medians. Without a pipeline (single, dp) floe
# runs each replica's batch whole (M=1), as PyTorch does. floe's figure is a 100-step epoch's
# samples/s (first step included, a small edge to PyTorch); PyTorch's the median of 3 runs of
# 40 steps after 10 warm-up steps.
# Usage: bench/pytorch/side_by_side.sh [OUTDIR] [ROUNDS] [SCHEDULE]   (from the checkout, after
#        the build; SCHEDULE is floe's pipeline.schedule for the pipe row, default 1f1b)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
peer=$root/bench/pytorch
out=${1:-${TMPDIR:-/tmp}/floe-side-by-side}; rounds=${2:-3}; schedule=${3:-1f1b}
[ -x "$root/build/floe" ] || { echo "side_by_side: $root/build/floe is missing: build floe first (make build)" >&2; exit 2; }
/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "side_by_side: /usr/bin/python3 has no torch: install python3-torch (.ci/install-deps)" >&2; exit 2; }
mkdir -p "$out"
# OpenBLAS picks its kernels by CPU model when it loads; on a CPU it does not know (this VM's
# "Intel(R) Xeon(R) Processor" with AVX-512) it falls back to its SSE3 ones (Prescott), 2.4x
# slower on GEMM. Both sides use the same library, so force the AVX-512 kernels for both.
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo &&
   OPENBLAS_VERBOSE=2 "$root/build/floe" --version 2>&1 | grep -q "Core: Prescott"; then
  export OPENBLAS_CORETYPE=SkylakeX
  echo "side_by_side: OpenBLAS does not know this CPU; OPENBLAS_CORETYPE=SkylakeX for both sides" >&2
fi
model=(--depth 6 --dim 64 --heads 4 --mlp-ratio 2 --patch 4)
common=(--set epochs=1 --set data.subset=12800 --set data.test_subset=500 --set freeze.policy=none
        --set elastic=false --set cache.enabled=false --set optimizer.warmup=20)
floe_run() { # layout, sets...
  local n=$1; shift
  echo "round $r: floe  $n" >&2
  ( cd "$root" && build/floe train "${common[@]}" "$@" --summary "$out/floe-$n-$r.json" ) > "$out/floe-$n-$r.log" 2>&1 ||
    { echo "side_by_side: floe $n failed, see $out/floe-$n-$r.log" >&2; exit 1; }
}
torch_run() { # layout, script, args...
  local n=$1 s=$2; shift 2
  echo "round $r: torch $n" >&2
  ( cd "$peer" && /usr/bin/python3 "$s" "${model[@]}" --lr 2e-3 --steps 40 --warmup 10 --runs 3 --json "$out/torch-$n-$r.json" "$@" ) \
    > "$out/torch-$n-$r.log" 2>&1 || { echo "side_by_side: PyTorch $n failed, see $out/torch-$n-$r.log" >&2; exit 1; }
}
layout() { # name, floe sets..., --, torch script and args...
  local n=$1; shift
  local f=() t=()
  while [ "$1" != "--" ]; do f+=("$1"); shift; done; shift
  t=("$@")
  if [ $((r % 2)) -eq 1 ]; then floe_run "$n" "${f[@]}"; torch_run "$n" "${t[@]}"
  else torch_run "$n" "${t[@]}"; floe_run "$n" "${f[@]}"; fi
}
for r in $(seq 1 "$rounds"); do
  layout single1 --set devices=1 --set threads_per_device=1 --set pipeline.length=1 --set replicas=1 \
    --set pipeline.micro_batches=1 -- bench_single.py --threads 1
  layout single2 --set devices=1 --set threads_per_device=2 --set pipeline.length=1 --set replicas=1 \
    --set pipeline.micro_batches=1 -- bench_single.py --threads 2
  layout pipe --set devices=2 --set pipeline.length=2 --set pipeline.micro_batches=4 --set replicas=1 \
    --set pipeline.schedule="\"$schedule\"" -- bench_pipe_ddp.py -K 2 -M 4 -R 1
  layout dp --set devices=2 --set pipeline.length=1 --set replicas=2 --set pipeline.micro_batches=1 \
    -- bench_pipe_ddp.py -K 1 -M 1 -R 2
done
/usr/bin/python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = {"single1": "one device, 1 intra-op thread", "single2": "one device, 2 intra-op threads",
        "pipe": "K=2 M=4 pipeline (PyTorch: Pipe)", "dp": "K=1 R=2 data parallel (PyTorch: DDP)"}
summary = {}
print(f"\n| layout (2 cores) | floe samples/s | PyTorch samples/s | floe / PyTorch |\n|---|---|---|---|")
for key, name in rows.items():
    f = [json.load(open(f"{out}/floe-{key}-{r}.json"))["epochs"][0]["samples_per_second"] for r in range(1, rounds + 1)]
    def torch_figure(r):
        d = json.load(open(f"{out}/torch-{key}-{r}.json"))
        return d.get("samples_per_s") or d["throughput"]["samples_per_s"]
    t = [torch_figure(r) for r in range(1, rounds + 1)]
    fm, tm = statistics.median(f), statistics.median(t)
    summary[key] = {"floe": f, "pytorch": t, "floe_median": fm, "pytorch_median": tm, "ratio": fm / tm}
    print(f"| {name} | {fm:.1f} ({', '.join(f'{x:.0f}' for x in f)}) | {tm:.1f} ({', '.join(f'{x:.0f}' for x in t)}) | {fm / tm:.2f} |")
json.dump(summary, open(f"{out}/side_by_side.json", "w"), indent=1)
print(f"\nmedians of {rounds} alternating rounds; per-round figures in parentheses; JSON: {out}/side_by_side.json")
PY
