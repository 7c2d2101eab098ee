#!/usr/bin/env python3
"""Builds tests/fixtures/corrupt-jpeg: damaged JPEGs and what Pillow makes of each.

Real photos from tests/fixtures/preprocess are scaled to 160x100 (100x160 for the portrait) and encoded as baseline,
progressive, 4:4:4, grayscale and (when jpegtran is on PATH, from Debian's libjpeg-turbo-progs) restart-interval
JPEGs. Each gets bits flipped at seeded positions inside its entropy-coded data (after an SOS segment; restart
markers excluded, every other byte of the scans included, FF 00 stuffing too), and a few are cut short. For every file
the script records Pillow's verdict with ImageFile.LOAD_TRUNCATED_IMAGES off, as the reference runs: "decodes", or the
exact OSError message. Files that decode, and refused one-scan files whose every row decodes (Pillow keeps them
once LOAD_TRUNCATED_IMAGES is on; see README.md), also get the reference evaluation transform's output at 48x48 (Resize(48, BICUBIC) of the
shorter side, CenterCrop(48), RGB, as uint8 levels) in expected.safetensors.

Usage:
    python3 tests/fixtures-tools/make_corrupt_jpegs.py                 # build the folder anew (files and verdicts)
    python3 tests/fixtures-tools/make_corrupt_jpegs.py --verdicts-only # keep the files, record this Pillow's verdicts
    python3 tests/fixtures-tools/make_corrupt_jpegs.py --out /tmp/many --every-seed 500   # a large check set for
        # WINTOK_CORRUPT_JPEG_FIXTURES=/tmp/many dotnet test tests/WinTok.Data.Tests -- --filter-class "*CorruptJpegTests"

Needs Pillow and numpy only. --verdicts-only is what to run with another Pillow (the reference's) so that the
recorded verdicts and pixels are that Pillow's: it rewrites index.json and expected.safetensors, never the JPEGs.
"""
import argparse
import hashlib
import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, ImageFile, features

REPO = Path(__file__).resolve().parents[2]
PHOTOS = REPO / "tests" / "fixtures" / "preprocess"
OUT = REPO / "tests" / "fixtures" / "corrupt-jpeg"
EXPECTED_SIZE = 48
MAX_SEEDS = 6000
FLIP_COUNTS = [1, 2, 4, 8]

# (photo, short name, variants); every variant gets 2 refused and 1 decoding bit-flipped file.
SOURCES = [
    ("autumn_2560x1600.jpg", "autumn", ["baseline", "progressive", "baseline-444", "gray"]),
    ("cups_2560x1600.jpg", "cups", ["baseline", "progressive"]),
    ("kite_2560x1600.jpg", "kite", ["baseline", "progressive", "baseline-restart", "progressive-restart"]),
    ("honeywave_1080x1920.jpg", "honeywave", ["baseline", "progressive"]),
]
# (short name, variant): cut at half the file and just before its last byte.
CUTS = [("autumn", "baseline"), ("autumn", "progressive"), ("kite", "progressive-restart")]


def encode(photo, variant):
    """One clean JPEG of the photo, or None when the variant needs a tool this machine lacks."""
    image = Image.open(PHOTOS / photo).convert("RGB")
    size = (160, 100) if image.width >= image.height else (100, 160)
    image = image.resize(size, Image.BICUBIC)
    options = {"quality": 90}
    if variant.startswith("progressive"):
        options["progressive"] = True
    if variant == "baseline-444":
        options["subsampling"] = 0
    if variant == "gray":
        image = image.convert("L")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    data = buffer.getvalue()
    if variant.endswith("-restart"):
        # One restart interval per MCU row for baseline, every 2 MCUs for progressive (jpegtran rewrites losslessly).
        if shutil.which("jpegtran") is None:
            return None
        # jpegtran writes sequential JPEGs unless told -progressive (then with its own scan script).
        arguments = ["-restart", "1"] if variant.startswith("baseline") else ["-progressive", "-restart", "2B"]
        data = subprocess.run(["jpegtran", *arguments], input=data, capture_output=True, check=True).stdout
    return data


def entropy_coded_positions(data):
    """The byte positions of a clean JPEG's scans that a flip may hit: after each SOS segment, up to the next marker."""
    positions, i = [], 2
    while i + 4 <= len(data):
        marker = data[i + 1]
        if marker == 0xD9:
            break
        length = data[i + 2] << 8 | data[i + 3]
        i += 2 + length
        if marker == 0xDA:
            while not (data[i] == 0xFF and data[i + 1] not in (0x00, 0xFF) and not 0xD0 <= data[i + 1] <= 0xD7):
                if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7:
                    i += 2  # a restart marker is a marker, not entropy-coded data
                    continue
                positions.append(i)
                i += 1
    return positions


def single_scan(data):
    """Sequential with every component in its one scan (libjpeg decodes its rows before reading the markers after them)."""
    i, frame, components = 2, None, None
    while i + 4 <= len(data):
        marker, length = data[i + 1], data[i + 2] << 8 | data[i + 3]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            frame, components = marker, data[i + 9]
        if marker == 0xDA:
            return frame not in (0xC2, 0xCA) and data[i + 4] == components
        i += 2 + length
    raise ValueError("no SOS marker in the header")


def pillow_verdict(data):
    """'decodes', or the OSError message, as the reference meets the file (LOAD_TRUNCATED_IMAGES off)."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        return "decodes"
    except OSError as error:
        return str(error)


def lenient_levels(data):
    """The reference transform's levels (3, 48, 48) with LOAD_TRUNCATED_IMAGES on, or None if Pillow still fails."""
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return reference_levels(image, EXPECTED_SIZE)
    except OSError:
        return None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def reference_levels(image, size):
    """torchvision 0.26's Resize(size, BICUBIC) of the shorter side, CenterCrop(size), then convert('RGB'), CHW uint8."""
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    if short != size:
        new_short, new_long = size, int(size * long / short)
        new_size = (new_short, new_long) if width <= height else (new_long, new_short)
        image = image.resize(new_size, Image.BICUBIC)
    width, height = image.size
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    image = image.crop((left, top, left + size, top + size)).convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))


def decodes_whole_when_lenient(entry):
    """A refused file whose every row libjpeg decoded: see README.md, 'Decodable damage'."""
    # In a one-scan JPEG the broken marker is read by jpeg_finish_decompress, after the last row.
    return entry["single_scan"] and entry["verdict"].startswith("broken data stream")


def flipped(data, positions, seed):
    rng = random.Random(seed)
    damaged = bytearray(data)
    flips = []
    for _ in range(rng.choice(FLIP_COUNTS)):
        position, bit = rng.choice(positions), rng.randrange(8)
        damaged[position] ^= 1 << bit
        flips.append([position, bit])
    return bytes(damaged), flips


def build(every_seed=None):
    """The damaged files; with every_seed, all of the first that many seeds per variant instead of a chosen few."""
    OUT.mkdir(parents=True, exist_ok=True)
    for stale in [*OUT.glob("*.jpg"), OUT / "index.json", OUT / "expected.safetensors"]:
        stale.unlink(missing_ok=True)  # README.md stays
    files = {}
    clean = {}
    for photo, short, variants in SOURCES:
        for variant in variants:
            data = encode(photo, variant)
            if data is None:
                print(f"skipping {short} {variant}: jpegtran is not installed", file=sys.stderr)
                continue
            clean[(short, variant)] = data
            positions = entropy_coded_positions(data)
            wanted = {"decodes": 1, "refused": 2}
            seen_messages = set()
            for seed in range(every_seed or MAX_SEEDS):
                damaged, flips = flipped(data, positions, seed)
                if every_seed:
                    name = f"{short}-{variant}-flips-s{seed}.jpg"
                    files[name] = {"photo": photo, "variant": variant, "damage": "flips", "seed": seed, "flips": flips}
                    (OUT / name).write_bytes(damaged)
                    continue
                verdict = pillow_verdict(damaged)
                kind = "decodes" if verdict == "decodes" else "refused"
                # Prefer a second kind of refusal (truncated) over a second of the same message.
                if wanted[kind] == 0 or (kind == "refused" and verdict in seen_messages and wanted[kind] == 1 and seed < MAX_SEEDS // 2):
                    continue
                wanted[kind] -= 1
                seen_messages.add(verdict)
                name = f"{short}-{variant}-flips-s{seed}.jpg"
                files[name] = {"photo": photo, "variant": variant, "damage": "flips", "seed": seed, "flips": flips}
                (OUT / name).write_bytes(damaged)
                if not any(wanted.values()):
                    break
    for short, variant in CUTS:
        data = clean.get((short, variant))
        if data is None:
            continue
        photo = next(p for p, s, _ in SOURCES if s == short)
        cuts = [("half", len(data) // 2), ("no-eoi-byte", len(data) - 1)]
        if every_seed:
            cuts += [(f"at-{length}", length) for length in range(len(data) // 4, len(data) - 1, 37)]
        for label, length in cuts:
            name = f"{short}-{variant}-cut-{label}.jpg"
            files[name] = {"photo": photo, "variant": variant, "damage": "cut", "length": length, "of": len(data)}
            (OUT / name).write_bytes(data[:length])
    return files


def record(files):
    """Pillow's verdicts and the expected levels for every file of the folder."""
    simd_off = levels_without_simd(sorted(files))
    tensors = {}
    for name, entry in sorted(files.items()):
        data = (OUT / name).read_bytes()
        entry["sha256"] = hashlib.sha256(data).hexdigest()
        entry["single_scan"] = single_scan(data)
        entry["verdict"] = pillow_verdict(data)
        for stale in ("expected", "default_pillow"):
            entry.pop(stale, None)
        if entry["verdict"] == "decodes" or decodes_whole_when_lenient(entry):
            levels = lenient_levels(data)
            key = name.removesuffix(".jpg").replace("-", "_")
            tensors[key] = simd_off[name]
            entry["expected"] = key
            difference = np.abs(levels.astype(int) - simd_off[name].astype(int))
            entry["default_pillow"] = {"within_one": round(float((difference <= 1).mean()), 6), "max": int(difference.max())}
    write_safetensors(OUT / "expected.safetensors", tensors)
    index = {
        "pillow": PIL.__version__,
        "libjpeg_turbo": features.version_feature("libjpeg_turbo"),
        "python": sys.version.split()[0],
        "expected_size": EXPECTED_SIZE,
        "transform": "Resize(size, BICUBIC) of the shorter side, CenterCrop(size), convert('RGB'); uint8 CHW levels; "
                     "decoded with ImageFile.LOAD_TRUNCATED_IMAGES on for files Pillow refuses, and with "
                     "libjpeg-turbo's SIMD off (JSIMD_FORCENONE=1); default_pillow compares Pillow with SIMD on",
        "files": files,
    }
    (OUT / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    counts = {}
    for entry in files.values():
        key = "decodes" if entry["verdict"] == "decodes" else entry["verdict"].split(" (")[0]
        counts[key] = counts.get(key, 0) + 1
    print(f"{len(files)} files, Pillow {PIL.__version__} (libjpeg-turbo {index['libjpeg_turbo']}): {counts}; "
          f"{len(tensors)} with expected levels")


def levels_without_simd(names):
    """
    The lenient levels of every file, decoded by a child process with libjpeg-turbo's SIMD off. On damaged data the
    SIMD inverse DCT overflows differently from the C one where corrupt coefficients are huge, and our decoder
    (SkiaSharp's libjpeg-turbo) computes as the C code does; on valid data both are bit-identical.
    """
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "levels.npz"
        environment = {**os.environ, "JSIMD_FORCENONE": "1"}
        subprocess.run([sys.executable, __file__, "--out", str(OUT), "--lenient-levels-to", str(target), *names],
                       env=environment, check=True)
        with np.load(target) as archive:
            return {name: archive[name] for name in archive.files}


def write_lenient_levels(target, names):
    levels = {name: lenient_levels((OUT / name).read_bytes()) for name in names}
    np.savez(target, **{name: value for name, value in levels.items() if value is not None})


def write_safetensors(path, tensors):
    header, offset, blobs = {"__metadata__": {"format": "uint8 levels"}}, 0, []
    for key in sorted(tensors):
        blob = tensors[key].tobytes()
        header[key] = {"dtype": "U8", "shape": list(tensors[key].shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    global OUT
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verdicts-only", action="store_true", help="keep the JPEGs, record this Pillow's verdicts")
    parser.add_argument("--out", type=Path, default=OUT, help="the folder to write (default: tests/fixtures/corrupt-jpeg)")
    parser.add_argument("--every-seed", type=int, metavar="N",
                        help="a large check set: every one of the first N seeds per variant, and cuts every 37 bytes")
    parser.add_argument("--lenient-levels-to", help=argparse.SUPPRESS)
    parser.add_argument("names", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    OUT = args.out.resolve()
    if args.lenient_levels_to:
        write_lenient_levels(args.lenient_levels_to, args.names)
        return
    files = json.loads((OUT / "index.json").read_text())["files"] if args.verdicts_only else build(args.every_seed)
    record(files)


if __name__ == "__main__":
    main()
