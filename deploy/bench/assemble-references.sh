#!/usr/bin/env bash
# Assembles the public reference code the GPU baselines import into .gpu/ref.tar.xz (the GPU machine has no internet and
# none of these installed; the baselines unpack it into /tmp there, refbench.find_ref). Run it from the repository root on the development machine, after deploy/gpu/pack.sh:
#
#   bash deploy/bench/assemble-references.sh [MIRRORS]        (MIRRORS defaults to /work/.mirror)
#
#   bash deploy/bench/assemble-references.sh --keep [MIRRORS]  (also keeps .gpu/ref/ unpacked)
#
# Each folder is a `git archive` of the pinned commit of a bare mirror (brought by the search tool's `fetch`:
# github:markywg/WinTok, github:FoundationVision/UniTok, github:richzhang/PerceptualSimilarity,
# github:huggingface/pytorch-image-models); only the folders the baselines import are taken:
#   ref/WinTok/                    models/ utils/ examples/ data/ configs/      (markywg/WinTok @ eb0452e)
#   .gpu/ref/UniTok/               models/ utils/ open_clip/ (its vendored copy) (FoundationVision/UniTok @ bb8012e)
#   .gpu/ref/PerceptualSimilarity/ lpips/ with weights/v0.1 (the pip `lpips` 0.1.4 package code)
#   .gpu/ref/timm-1.0.8/timm/      timm 1.0.8, the version UniTok pins (newer timm passes norm_layer/bias to
#                                  UniTok's GeGluMlp, which does not accept them: spec section 7.16)
# The baselines add these folders to sys.path themselves. --keep also leaves the unpacked .gpu/ref/ (for CPU tests here). pytorch-fid is not needed: WinTok vendors its
# InceptionV3 (examples/eval_tokenizer/inception.py).
set -euo pipefail
keep=0; [ "${1:-}" = --keep ] && { keep=1; shift; }
mirrors=${1:-/work/.mirror}
root=$(git rev-parse --show-toplevel)
out="$root/.gpu/ref"
git -C "$root" check-ignore -q .gpu/ref || { echo ".gpu/ is not ignored by git here: add it to .gitignore first" >&2; exit 1; }
rm -rf "$out" "$out.tar.xz" && mkdir -p "$out"

take() { # take NAME MIRROR COMMIT PATHS...
  local name=$1 mirror=$2 commit=$3; shift 3
  local git="$mirrors/$mirror/repo"
  if [ ! -d "$git" ]; then
    echo "MISSING mirror $git: bring it with the search tool's fetch (github:${mirror/+//}) and run this again" >&2
    return 1
  fi
  if ! git -C "$git" cat-file -e "$commit^{commit}" 2>/dev/null; then
    echo "MISSING commit $commit in $git (the mirror holds $(git -C "$git" rev-parse --short HEAD))" >&2
    return 1
  fi
  mkdir -p "$out/$name"
  git -C "$git" archive "$commit" "$@" | tar -x -C "$out/$name"
  echo "$name: $mirror @ $(git -C "$git" rev-parse --short "$commit") ($*)" >> "$out/SOURCES.txt"
}

failed=0
take WinTok markywg+WinTok eb0452e models utils examples data configs || failed=1
take UniTok FoundationVision+UniTok bb8012e models utils open_clip || failed=1
take PerceptualSimilarity richzhang+PerceptualSimilarity HEAD lpips || failed=1
take timm-1.0.8 huggingface+pytorch-image-models v1.0.8 timm || failed=1
# byte-compiled caches and the lpips v0.0 weights are not needed
find "$out" -name '__pycache__' -type d -prune -exec rm -rf {} +
rm -rf "$out/PerceptualSimilarity/lpips/weights/v0.0"
size=$(du -sh "$out" | cut -f1)
tar -C "$root/.gpu" -cf - ref | xz -T0 -6 > "$out.tar.xz"
cat "$out/SOURCES.txt"
[ $keep -eq 1 ] || rm -rf "$out"
echo "assembled: .gpu/ref.tar.xz $(du -sh "$out.tar.xz" | cut -f1) ($size unpacked); .gpu in all: $(du -sh "$root/.gpu" | cut -f1)"
exit $failed
