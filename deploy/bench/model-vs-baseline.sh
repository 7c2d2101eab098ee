#!/usr/bin/env bash
# Side-by-side model throughput on the GPU machine: deploy/bench/torch_baseline.py (eager PyTorch, bf16 autocast)
# and `wintok-bench tokenize` (TorchSharp, bf16 encoder/decoder, fp32 projections and VQ), same machine, same run.
# Peak GPU memory of each process is sampled with nvidia-smi every 100 ms.
#   bash deploy/bench/model-vs-baseline.sh [BATCH] [SEMANTIC_TOKENS...]      (WINTOK_MODES=bf16,bf16-torch adds modes)
# Expects the packed benchmarks in .gpu/ (bash deploy/gpu/pack.sh src/WinTok.Benchmarks/WinTok.Benchmarks.csproj, which
# also copies deploy/bench into .gpu/bench).
set -euo pipefail
batch=${1:-128}; shift || true
tokens=${*:-32 256}
peak() { # runs "$@" while sampling memory.used; prints the peak MiB after it
  local log; log=$(mktemp)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$log" &
  local sampler=$!
  "$@"
  kill "$sampler"; wait "$sampler" 2>/dev/null || true
  echo "PEAK_GPU_MEMORY_MIB $(sort -n "$log" | tail -1) :: $*"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
for n in $tokens; do
  peak python3 .gpu/bench/torch_baseline.py --semantic-tokens "$n" --batch "$batch" --modes bf16
  peak bash .gpu/run.sh wintok-bench.dll tokenize --semantic-tokens "$n" --batch "$batch" --modes "${WINTOK_MODES:-bf16}" --agreement
done
