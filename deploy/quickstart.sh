#!/usr/bin/env bash
# The README's first command: the main job on embedded defaults, with nothing to download or start. Builds the CLI,
# writes sample images and a tiny random-initialised checkpoint (tokens meaningless, pipeline real), tokenizes them
# in one process (in-process queue, SQLite results database), then verifies the dataset against its manifest.
# Needs only the .NET SDK (fresh Debian 12 is fine). Starts from an empty .wintok-demo/ every time. Puts a `wintok`
# launcher for this checkout's build into ~/.local/bin (the usual per-user bin folder, on the PATH of most shells).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

demo=.wintok-demo
cli=$root/src/WinTok.Cli/bin/Release/net10.0/linux-x64/WinTok.Cli.dll
wintok() { dotnet "$cli" "$@"; }

echo "==> dotnet build src/WinTok.Cli -c Release"
dotnet build src/WinTok.Cli -c Release -nologo -v quiet -clp:ErrorsOnly
rm -rf "$demo"

bin=${WINTOK_BIN_DIR:-$HOME/.local/bin}
mkdir -p "$bin"
printf '#!/bin/sh\n# wintok from %s (written by deploy/quickstart.sh)\nexec dotnet "%s" "$@"\n' "$root" "$cli" > "$bin/wintok"
chmod +x "$bin/wintok"
case ":$PATH:" in
  *":$bin:"*) echo "==> installed $bin/wintok" ;;
  *) echo "==> installed $bin/wintok; add it to your PATH: export PATH=\"$bin:\$PATH\"" ;;
esac

echo "==> wintok sample $demo"
wintok sample "$demo"

echo "==> wintok tokenize $demo/images $demo/tokens --checkpoint $demo/random-tiny.safetensors --files-per-partition 10"
wintok tokenize "$demo/images" "$demo/tokens" --checkpoint "$demo/random-tiny.safetensors" --files-per-partition 10

echo "==> wintok verify $demo/tokens"
wintok verify "$demo/tokens"

# One evaluation of the same checkpoint, recorded in the same results database, so the dashboard shows both jobs.
echo "==> wintok evaluate $demo/random-tiny.safetensors $demo/images --output $demo/evaluation --metrics psnr,ssim,usage --db $demo/tokens/_wintok/results.db"
wintok evaluate "$demo/random-tiny.safetensors" "$demo/images" --output "$demo/evaluation" --metrics psnr,ssim,usage \
  --db "$demo/tokens/_wintok/results.db"

echo
echo "Next: 'wintok dashboard' shows these jobs, their failures and the evaluation at http://127.0.0.1:5080 (Ctrl+C stops it)."
