#!/usr/bin/env bash
# The README's first command: the main job on embedded defaults, with nothing to download or start. Builds the CLI,
# writes sample images and a tiny random-initialised checkpoint (tokens meaningless, pipeline real), tokenizes them
# in one process (in-process queue, SQLite results database), then verifies the dataset against its manifest.
# Needs only the .NET SDK (fresh Debian 12 is fine). Starts from an empty .wintok-demo/ every time.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=.wintok-demo
cli=src/WinTok.Cli/bin/Release/net10.0/linux-x64/WinTok.Cli.dll
wintok() { dotnet "$cli" "$@"; }

echo "==> dotnet build src/WinTok.Cli -c Release"
dotnet build src/WinTok.Cli -c Release -nologo -v quiet -clp:ErrorsOnly
rm -rf "$demo"

echo "==> wintok sample $demo"
wintok sample "$demo"

echo "==> wintok tokenize $demo/images $demo/tokens --checkpoint $demo/random-tiny.safetensors --files-per-partition 10"
wintok tokenize "$demo/images" "$demo/tokens" --checkpoint "$demo/random-tiny.safetensors" --files-per-partition 10

echo "==> wintok verify $demo/tokens"
wintok verify "$demo/tokens"
