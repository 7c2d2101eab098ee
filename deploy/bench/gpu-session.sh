#!/usr/bin/env bash
# The GPU session: every speed target of issues 10, 12 and 13 measured side by side with the reference's own code, in
# one machine's run. From the repository root on the GPU machine (deploy/gpu/README.md "The GPU session" says how to
# assemble .gpu first):
#
#   bash .gpu/bench/gpu-session.sh [--dry-run] [STEP ...]
#
# STEP is any of: info tokenize eval unitok train curve checks (default: all, in that order). One device call may run
# 10 minutes, the whole session about 13, so the README splits it in two calls (tokenize eval / unitok train curve
# checks). --dry-run runs every step with tiny sizes (tiny models, a batch of 2-4, 1-2 iterations) in a few minutes,
# to shake out problems before the real run.
#
# Everything goes to stdout and to $OUT/session.log (OUT defaults to /tmp/wintok-session); $OUT/summary.txt holds
# only the machine-readable lines (STEP, WINTOK, BASELINE, PEAK_GPU_MEMORY_MIB) and the ratios computed from them
# (summarize.py). A step that fails or times out is reported (STEP ... status=) and the next one runs.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)          # .gpu/bench
gpu=${WINTOK_GPU_DIR:-$(cd "$here/.." && pwd)}   # .gpu (set it when running the scripts from deploy/bench)
out=${OUT:-/tmp/wintok-session}
mkdir -p "$out"
log="$out/session.log"
dry=0
steps=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry=1 ;;
    info|tokenize|eval|unitok|train|curve|checks) steps+=("$arg") ;;
    *) echo "unknown argument '$arg' (steps: info tokenize eval unitok train curve checks; --dry-run)" >&2; exit 2 ;;
  esac
done
[ ${#steps[@]} -eq 0 ] && steps=(info tokenize eval unitok train curve checks)
export PYTHONUNBUFFERED=1
# The launchers, as command words (`timeout` runs programs, not shell functions). WINTOK_BENCH / WINTOK_PYTHON replace
# them (a CPU test runs the Release build and Debian's python3).
if [ -n "${WINTOK_BENCH:-}" ]; then read -r -a bench <<< "$WINTOK_BENCH"; else bench=(bash "$gpu/run.sh" wintok-bench.dll); fi
read -r -a py <<< "${WINTOK_PYTHON:-python3}"
exec > >(tee -a "$log") 2>&1

# run NAME SECONDS COMMAND...: a header, the command under `timeout`, its status and duration; never stops the session
run() {
  local name=$1 limit=$2; shift 2
  echo
  echo "================================================================================"
  echo "== $name ($(date -u +%H:%M:%S), limit ${limit}s): $*"
  echo "================================================================================"
  local start=$SECONDS
  timeout --kill-after=10 "$limit" "$@"
  local status=$?
  local result=ok
  [ $status -eq 124 ] || [ $status -eq 137 ] && result=timeout
  [ $status -ne 0 ] && [ $result = ok ] && result="failed($status)"
  echo "STEP name=$name status=$result seconds=$((SECONDS - start))"
}

# peak NAME SECONDS COMMAND...: as run, sampling the device's used memory every 100 ms (as model-vs-baseline.sh)
peak() {
  local name=$1; shift
  local samples; samples=$(mktemp)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$samples" 2>/dev/null &
  local sampler=$!
  run "$name" "$@"
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
  echo "PEAK_GPU_MEMORY_MIB $(sort -n "$samples" | tail -1) :: $name"
  rm -f "$samples"
}

if [ $dry -eq 1 ]; then
  echo "DRY RUN: tiny sizes; the figures mean nothing, only that every step runs"
  EVAL="--preset tiny --semantic-tokens 4 --batch 4 --batches 1 --warmup 1"
  TRAIN="--preset tiny --semantic-tokens 4 --batch 2 --grad-accu 2 --warmup 2 --iters 2"
  UNITOK_REF="--tiny --batch 4 --iters 2"; UNITOK_OURS="--preset tiny --batch 4 --iters 2"
  LIMIT_BIG=240; LIMIT_SMALL=180
else
  EVAL="--batch 64 --batches 8 --warmup 2"
  TRAIN="--batch 32 --grad-accu 4 --warmup 4 --iters 8"
  UNITOK_REF="--batch 128 --iters 5"; UNITOK_OURS="--batch 128 --iters 5"
  LIMIT_BIG=420; LIMIT_SMALL=300
fi
export_dir=/tmp/wintok-eval-reference
fid=--no-fid; [ "${WINTOK_FID:-0}" = 1 ] && fid=""   # scipy's sqrtm of 2048x2048 costs minutes on the CPU

for s in "${steps[@]}"; do
  case "$s" in
    info)
      run info 60 bash -c 'nvidia-smi; nproc; free -g | head -2; python3 -c "import torch, sys; print(\"python\", sys.version.split()[0], \"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.get_device_name(0))"; ls -la '"$gpu"'; tar -xJOf '"$gpu"'/ref.tar.xz ref/SOURCES.txt 2>/dev/null || cat '"$gpu"'/ref/SOURCES.txt'
      ;;
    tokenize)   # issue 2's ratio, re-checked on this machine (WinTok so400m, N = 32, batch 128)
      if [ $dry -eq 1 ]; then
        peak tokenize-baseline $LIMIT_SMALL "${py[@]}" "$here/torch_baseline.py" --preset B-16-256 --semantic-tokens 32 --batch 4 --modes bf16 --iters 2
        peak tokenize-ours $LIMIT_SMALL "${bench[@]}" tokenize --preset B-16-256 --semantic-tokens 32 --batch 4 --iters 2 --agreement
      else
        run tokenize-model-vs-baseline $LIMIT_BIG bash "$here/model-vs-baseline.sh" 128 32   # prints its own PEAK lines
      fi
      ;;
    eval)       # issue 10 item 4: the reference's evaluation step, then ours on its weights and images
      rm -rf "$export_dir"
      peak eval-baseline $LIMIT_BIG "${py[@]}" "$here/eval_baseline.py" $EVAL --components $fid --export "$export_dir"
      peak eval-ours $LIMIT_BIG "${bench[@]}" evaluate $EVAL --modes fp32,bf16 --components --reference "$export_dir"
      rm -rf "$export_dir"
      ;;
    unitok)     # issue 13 item 5: UniTok-L tokenize / round trip, bf16
      peak unitok-baseline $LIMIT_SMALL "${py[@]}" "$here/unitok_baseline.py" $UNITOK_REF --modes bf16 --agreement
      peak unitok-ours $LIMIT_SMALL "${bench[@]}" tokenize --model unitok $UNITOK_OURS --modes bf16 --agreement
      ;;
    train)      # issue 12 item 8: the training step, generator-only and full, bf16
      peak train-baseline $LIMIT_BIG "${py[@]}" "$here/train_baseline.py" $TRAIN
      peak train-ours $LIMIT_BIG "${bench[@]}" train $TRAIN
      ;;
    curve)      # issue 12 item 3: the fixture's 20 iterations, fp32 and bf16, beside the reference's fp32 values
      run train-curve $LIMIT_SMALL "${bench[@]}" train-curve --fixture tests/fixtures/training
      ;;
    checks)     # small checks other engineers prepared, when present
      if [ -f tests/fixtures-tools/make_lpips_fixture.py ]; then
        ref=$("${py[@]}" -c "import sys; sys.path.insert(0, '$here'); import refbench; print(refbench.find_ref())")
        # the session leaves tests/fixtures/metrics behind (size limit): .gpu/lpips holds the slice the script reads
        [ -f "$gpu/lpips/metrics.io.safetensors" ] && export WINTOK_METRICS_IO="$gpu/lpips/metrics.io.safetensors"
        run lpips-fixture $LIMIT_SMALL "${py[@]}" tests/fixtures-tools/make_lpips_fixture.py "$ref/PerceptualSimilarity" "$out/metrics-lpips"
      else
        echo "STEP name=lpips-fixture status=skipped reason=tests/fixtures-tools/make_lpips_fixture.py_absent"
      fi
      # the damaged-JPEG verdicts and pixels of this machine's Pillow (the reference's, 12.x) in place of Debian's 9.4;
      # SIMD off as the fixture was made (docs/preprocessing.md), into $out/corrupt-jpeg to commit when they differ
      if [ -f tests/fixtures-tools/make_corrupt_jpegs.py ]; then
        mkdir -p "$out/corrupt-jpeg" /tmp/corrupt-jpeg && cp tests/fixtures/corrupt-jpeg/* /tmp/corrupt-jpeg/
        JSIMD_FORCENONE=1 run corrupt-jpeg-verdicts $LIMIT_SMALL "${py[@]}" tests/fixtures-tools/make_corrupt_jpegs.py --verdicts-only --out /tmp/corrupt-jpeg
        cp /tmp/corrupt-jpeg/index.json /tmp/corrupt-jpeg/expected.safetensors "$out/corrupt-jpeg/" 2>/dev/null
        "${py[@]}" -c "import PIL; print('PILLOW', PIL.__version__)"
      fi
      # a training run's checkpoint of `wintok train` (the sample kit), read by the reference's own classes and loaders
      kit="$gpu/train-check"
      if [ -f tests/fixtures-tools/check_training_checkpoint_in_reference.py ] && [ -f "$kit/ckpt-last.pth" ]; then
        ref=$("${py[@]}" -c "import sys; sys.path.insert(0, '$here'); import refbench; print(refbench.find_ref())")
        run training-checkpoint-check $LIMIT_SMALL "${py[@]}" tests/fixtures-tools/check_training_checkpoint_in_reference.py \
          --ref "$ref/WinTok" --checkpoint "$kit/ckpt-last.pth" --teacher "$kit/siglip-tiny" --dino "$kit/dinov2-tiny.safetensors"
      else
        echo "STEP name=training-checkpoint-check status=skipped reason=no_train-check_kit_or_script"
      fi
      sample="$gpu/checkpoint-sample/wintok-sample.pth"
      if [ -f tests/fixtures-tools/check_written_checkpoint.py ] && [ -f "$sample" ]; then
        run checkpoint-check 120 "${py[@]}" tests/fixtures-tools/check_written_checkpoint.py "$sample"
      else
        echo "STEP name=checkpoint-check status=skipped reason=no_${sample#$PWD/}_or_no_script"
      fi
      ;;
  esac
done

echo
echo "== summary ($out/summary.txt)"
grep -E '^(STEP|WINTOK|BASELINE|PEAK_GPU_MEMORY_MIB|DRY RUN)' "$log" > "$out/summary.txt"
sleep 1   # let tee write the last lines into session.log
"${py[@]}" "$here/summarize.py" "$log" | tee -a "$out/summary.txt"
