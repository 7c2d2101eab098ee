#!/usr/bin/env python3
"""Reference reader for WinTok token datasets (docs/token-shards.md), needing only pyarrow and numpy.

    python3 read_tokens.py DATASET                      # summary of every shard listed in the manifest
    python3 read_tokens.py DATASET --verify             # also check sha256, sizes and shapes
    python3 read_tokens.py DATASET --expect FILE.json   # compare with values written by the C# test

DATASET is the folder holding _manifest.json. For blob storage, pass any pyarrow filesystem (for example
pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(adlfs.AzureBlobFileSystem(...)))) as `filesystem`.

This reader follows the manifest, the list of committed shards. To look at a finished dataset without it,
pq.read_table(DATASET) reads the token rows alone: pyarrow skips _manifest.json and _errors/ (names starting with
"_"), where each shard's failure records are (the manifest's errors_path; pq.read_table(DATASET + "/_errors")).
"""
import argparse
import hashlib
import json
import posixpath
import sys

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq


def read_manifest(root, filesystem=None):
    """The manifest: the only list of shards a reader may use (a shard not listed there is not committed)."""
    with _open(root, "_manifest.json", filesystem) as f:
        return json.load(f)


def bf16_bits_to_float32(bits):
    """bfloat16 bit patterns (stored as int16) -> float32: the bits are the upper half of a float32."""
    return (np.asarray(bits).view(np.uint16).astype(np.uint32) << 16).view(np.float32)


def iter_row_groups(root, columns=("row_id", "key", "label", "pixel_tokens"), filesystem=None, verify=False, as_int64=False):
    """Yields one dict of numpy arrays per row group of every manifest-listed shard, in manifest order.

    columns: projection; only these columns are read from storage. Arrays come back as
      row_id (rows,) int64, key (rows,) object, label (rows,) int32 with -1 for null,
      pixel_tokens (rows, K, L) uint16 (int64 if as_int64; codebook-major: [r, k, l] = codebook k at position l),
      semantic_tokens (rows, N, D) float32, semantic_pooled (rows, D) float32,
      any other column as a numpy array.
    """
    manifest = read_manifest(root, filesystem)
    layout = manifest["layout"]
    k, l = layout["num_codebooks"], layout["positions"]
    n, d = layout["semantic_tokens"], layout["semantic_dim"]
    shapes = {"pixel_tokens": (k, l), "semantic_tokens": (n, d), "semantic_pooled": (d,)}
    for shard in manifest["shards"]:
        with _open(root, shard["path"], filesystem) as f:
            if verify:
                _check_hash(f, shard)
            parquet = pq.ParquetFile(f)
            for g in range(parquet.num_row_groups):
                table = parquet.read_row_group(g, columns=list(columns))
                batch = {}
                for name in columns:
                    column = table.column(name)
                    if name in shapes:
                        values = _fixed_list(column, shapes[name], name)
                        if name == "pixel_tokens":
                            batch[name] = values.astype(np.int64) if as_int64 else values
                        else:
                            batch[name] = bf16_bits_to_float32(values)
                    elif name == "label":
                        batch[name] = column.fill_null(-1).to_numpy().astype(np.int32)
                    else:
                        batch[name] = column.to_numpy()
                yield batch


def _fixed_list(column, shape, name):
    """A list column whose rows all hold prod(shape) values -> array (rows, *shape), checked, without copying twice."""
    array = column.combine_chunks()
    per_row = int(np.prod(shape))
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
    if array.null_count or np.any(lengths != per_row):
        raise ValueError(f"{name}: expected {per_row} values in every row, found {sorted(set(lengths.tolist()))}")
    flat = array.flatten().to_numpy()
    return flat.reshape((len(array),) + tuple(shape))


def _open(root, path, filesystem):
    full = posixpath.join(root, path)
    return filesystem.open_input_file(full) if filesystem is not None else open(full, "rb")


def _check_hash(f, shard):
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: f.read(1 << 20), b""):
        digest.update(chunk)
        size += len(chunk)
    f.seek(0)
    if digest.hexdigest() != shard["sha256"] or size != shard["bytes"]:
        raise ValueError(f"{shard['path']}: sha256 {digest.hexdigest()} / {size} bytes, manifest lists {shard['sha256']} / {shard['bytes']}")


def _main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--verify", action="store_true")
    parser.add_argument("--expect", help="JSON of expected values written by the C# PythonReader test")
    args = parser.parse_args()

    manifest = read_manifest(args.dataset)
    layout = manifest["layout"]
    columns = ["row_id", "key", "label", "pixel_tokens"]
    if layout["semantic_tokens"]:
        columns.append("semantic_tokens")
    if layout["has_pooled"]:
        columns.append("semantic_pooled")
    rows = {}
    for batch in iter_row_groups(args.dataset, columns, verify=args.verify):
        print(", ".join(f"{name} {batch[name].dtype}{list(batch[name].shape)}" for name in columns))
        for i, key in enumerate(batch["key"]):
            rows[key] = {name: batch[name][i] for name in columns}
    print(f"{len(rows)} rows in {len(manifest['shards'])} shards; manifest total {manifest['totals']['rows']}")
    if len(rows) != manifest["totals"]["rows"]:
        sys.exit("row count differs from the manifest")

    # Projection: reading only pixel_tokens must not touch the semantic columns.
    pixel_only = next(iter_row_groups(args.dataset, ("pixel_tokens",), as_int64=True))
    assert list(pixel_only) == ["pixel_tokens"] and pixel_only["pixel_tokens"].dtype == np.int64

    if args.expect:
        with open(args.expect) as f:
            expected = json.load(f)
        failures = 0
        for want in expected["rows"]:
            got = rows[want["key"]]
            checks = {
                "row_id": int(got["row_id"]) == want["row_id"],
                "label": int(got["label"]) == (-1 if want["label"] is None else want["label"]),
                "pixel_tokens": got["pixel_tokens"].dtype == np.uint16
                and np.array_equal(got["pixel_tokens"], np.array(want["pixel_tokens"], dtype=np.uint16)),
            }
            if "semantic_tokens" in got:
                semantic = got["semantic_tokens"]
                checks["semantic_samples"] = all(semantic[n, d] == np.float32(v) for n, d, v in want["semantic_samples"])
                checks["semantic_sum"] = abs(float(semantic.astype(np.float64).sum()) - want["semantic_sum"]) < 1e-6
                checks["semantic_pooled"] = np.array_equal(got["semantic_pooled"], np.array(want["semantic_pooled"], dtype=np.float32))
            for name, ok in checks.items():
                if not ok:
                    failures += 1
                    print(f"MISMATCH {want['key']}: {name}")
        print(f"checked {len(expected['rows'])} rows against {args.expect}: {'OK' if failures == 0 else f'{failures} mismatches'}")
        sys.exit(1 if failures else 0)


if __name__ == "__main__":
    _main()
