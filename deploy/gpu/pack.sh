#!/usr/bin/env bash
# Packs a .NET project of this repo so that it runs on the GPU machine of the `device` tool.
#
#   bash deploy/gpu/pack.sh PATH/TO/Project.csproj [--aspnet]
#
# Run it from the repository root. It writes .gpu/ (ignored by git through .git/info/exclude):
#   .gpu/app.tar.xz      the project, published framework-dependent, with every libtorch/libc10
#                        binary removed (the GPU machine's own CUDA libtorch is used instead); run.sh
#                        unpacks it there
#   .gpu/dotnet.tar.xz   this machine's .NET runtime (the GPU machine has none)
#   .gpu/run.sh          the launcher to call there
# Then, with the device tool:  run(command="bash .gpu/run.sh App.dll ARGS...", carry=[".gpu"])
# Everything under .gpu must stay below 64 MiB together with the working tree.
set -euo pipefail
proj=${1:?usage: pack.sh PATH/TO/Project.csproj [--aspnet]}
aspnet=${2:-}
root=$(git rev-parse --show-toplevel)
here=$(cd "$(dirname "$0")" && pwd)
cd "$root"
if ! git check-ignore -q .gpu/app; then   # .gitignore lists .gpu/; older checkouts learn it here
  exclude=$(git rev-parse --git-path info/exclude)   # also right in a worktree, where .git is a file
  mkdir -p "$(dirname "$exclude")" && echo '/.gpu/' >> "$exclude"
fi
rm -rf .gpu/app .gpu/app.tar.xz && mkdir -p .gpu
dotnet publish "$proj" -c Release -o .gpu/app -r linux-x64 --self-contained false -p:PublishReadyToRun=false >/tmp/gpu-pack-publish.log 2>&1 \
  || { tail -30 /tmp/gpu-pack-publish.log; exit 1; }
# libtorch from the CPU packages must not shadow the CUDA one on the GPU machine
find .gpu/app -type f \( -name 'libtorch*.so*' -o -name 'libc10*.so*' -o -name 'libgomp*.so*' -o -name 'libshm*.so*' \
  -o -name 'libbackend_with_compiler*.so*' -o -name 'libjitbackend_test*.so*' -o -name 'libnnapi_backend*.so*' \
  -o -name 'libtorchbind_test*.so*' -o -name 'libcaffe2*.so*' -o -name 'libaoti*.so*' -o -name 'libfbjni*.so*' -o -name 'libpytorch_jni*.so*' \) -delete
rm -rf .gpu/app/runtimes/win* .gpu/app/runtimes/osx* .gpu/app/runtimes/linux-arm* .gpu/app/runtimes/linux-musl* .gpu/app/runtimes/linux-x86 2>/dev/null || true
dn=$(dirname "$(readlink -f "$(command -v dotnet)")")
frameworks="shared/Microsoft.NETCore.App"
[ "$aspnet" = "--aspnet" ] && frameworks="$frameworks shared/Microsoft.AspNetCore.App"
stamp=".gpu/dotnet.stamp"; want="$(dotnet --list-runtimes | md5sum | cut -c1-8) $frameworks"
if [ ! -f .gpu/dotnet.tar.xz ] || [ "$(cat $stamp 2>/dev/null)" != "$want" ]; then
  (cd "$dn" && tar -cJf "$root/.gpu/dotnet.tar.xz" dotnet host $frameworks)
  echo "$want" > "$stamp"
fi
cp "$here/run.sh" .gpu/run.sh
# the baselines and side-by-side scripts travel with the binaries
rm -rf .gpu/bench && cp -r "$root/deploy/bench" .gpu/bench
# the app travels compressed (about a third of its size); run.sh unpacks it on the GPU machine
app_size=$(du -sh .gpu/app | cut -f1)
(cd .gpu && tar -cf - app | xz -T0 -6 > app.tar.xz && rm -rf app)
echo "packed: $(du -sh .gpu | cut -f1) in .gpu (app $app_size, $(du -sh .gpu/app.tar.xz | cut -f1) compressed)"
