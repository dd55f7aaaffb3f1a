"""Pack an assembled dataset (``records/shard-*.jsonl``) into zstd Parquet splits with a manifest and a card.

Parquet (zstd) because HF ``datasets`` and pandas both read it offline with no loading script, columns
compress well (the generated code is repetitive), and nested fields (``ir``, ``verification``...) keep their
structure. Splits are stable: a record's split is a function of its ``structural_hash`` alone, so the same
program never lands in two splits and a rerun never moves a record. Inside a split, rows are grouped by family
(canonical order within one): zstd then sees one family's code side by side, which on the CPU dataset's
first 4,000 training rows gave 4.97 MB at level 19 against 7.18 MB interleaved at level 9. Shuffle before
training.

A dataset that grows keeps its files: a Parquet file of the previous pack whose rows are all still in the dataset
is kept byte for byte (renumbered), and only the records it does not hold go to new files. A grown dataset then
adds to a repository's history what is new, not a rewrite of every shard. ``--repack`` rewrites every file.

``--unpack`` is the way back, for growing a committed dataset on a fresh clone: it writes the dataset's whole
chunks back under ``work/`` (records, the chunks' rejects, the runs), so a production with a larger target or
more families resumes from them instead of making them again.

    wkf-pack production/cpu_code
    wkf-pack --unpack production/cpu_code
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .record import canonical_json
from .writer import atomic_write_bytes, load_records, read_jsonl

SPLITS = (("train", 90), ("validation", 95), ("test", 100))
ROWS_PER_FILE = 4000


def split_of(structural_hash: str) -> str:
    bucket = int(structural_hash[:8], 16) % 100
    return next(name for name, upper in SPLITS if bucket < upper)


def _nullable(schema: dict) -> bool:
    kinds = schema.get("type")
    return "null" in kinds if isinstance(kinds, list) else kinds == "null" or not kinds


def _absent_nulls(value, schema: dict):
    """``value`` without the nulls Parquet writes for properties a record leaves out (a column is the union of its
    rows' fields): a null is dropped where the record schema does not allow one."""
    if not isinstance(value, dict) or schema.get("type") != "object":
        return value
    props, extra = schema.get("properties", {}), schema.get("additionalProperties")
    out = {}
    for key, item in value.items():
        sub = props.get(key, extra if isinstance(extra, dict) else {})
        if item is None and key not in schema.get("required", ()) and not _nullable(sub):
            continue
        out[key] = _absent_nulls(item, sub)
    return out


def unflatten(row: dict) -> dict:
    """The record a Parquet row holds (the inverse of :func:`flatten`)."""
    from .schema import validator

    record = dict(row)
    if isinstance(row.get("features"), str):
        record["features"] = json.loads(row["features"])
    per_output = (row.get("verification") or {}).get("tolerance_per_output")
    if isinstance(per_output, list):             # as flatten writes it (a struct keyed by output names also reads)
        record["verification"] = {**row["verification"], "tolerance_per_output": {
            t["output"]: {"rtol": t["rtol"], "atol": t["atol"]} for t in per_output}}
    return _absent_nulls(record, validator().schema)


def flatten(record: dict) -> dict:
    """Parquet row: nested dicts kept; the family-specific ``features`` as a JSON string (its keys vary), and the
    tolerance per output as a list of ``{output, rtol, atol}`` (a struct keyed by output names would give each
    file a column type of its own)."""
    row = dict(record)
    row["features"] = json.dumps(record["features"], sort_keys=True)
    per_output = record["verification"].get("tolerance_per_output")
    if per_output is not None:
        row["verification"] = {**record["verification"], "tolerance_per_output": [
            {"output": name, "rtol": t["rtol"], "atol": t["atol"]} for name, t in sorted(per_output.items())]}
    return row


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([flatten(r) for r in rows])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def kept_files(root: Path, records: list[dict]) -> dict[str, list[dict]]:
    """Per split, the previous pack's files (manifest entries, in order) that still hold their manifest bytes and
    whose every row is, field for field, a record of ``records``."""
    manifest_path = Path(root) / "manifest.json"
    if not manifest_path.exists():
        return {}
    by_id = {r["id"]: r for r in records}
    kept: dict[str, list[dict]] = defaultdict(list)
    for shard in json.loads(manifest_path.read_text())["shards"]:
        path = Path(root) / shard["file"]
        if not path.exists() or sha256_file(path) != shard["sha256"]:
            continue
        rows = pq.read_table(path).to_pylist()
        if all(row["id"] in by_id and canonical_json(unflatten(row)) == canonical_json(by_id[row["id"]])
               for row in rows):
            kept[shard["split"]].append({**shard, "ids": {row["id"] for row in rows}})
    return kept


def pack(root: Path, repack: bool = False) -> dict:
    root = Path(root)
    records = load_records(root)
    if not records:
        raise SystemExit(f"{root}: no records to pack (run the production first)")
    keep = {} if repack else kept_files(root, records)
    by_split: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_split[split_of(r["structural_hash"])].append(r)
    data = root / "data"
    staging = root / ".data.tmp"
    if staging.exists():
        for p in staging.iterdir():
            p.unlink()
    staging.mkdir(parents=True, exist_ok=True)
    # the files to write, per split: rows grouped by family (stable: canonical within a family), new files first,
    # then the kept ones; every written file gets the union of all files' column types. Readers take the types
    # from a split's first file (HF datasets, pandas), so a split whose first file would be a kept one with fewer
    # columns is written anew.
    def layout(keep: dict) -> list[tuple[str, object]]:
        plan: list[tuple[str, object]] = []
        for split, _ in SPLITS:
            old = keep.get(split, [])
            held = set().union(*(s["ids"] for s in old))
            rows = sorted((r for r in by_split.get(split, []) if r["id"] not in held), key=lambda r: r["family"])
            plan += [(split, _table(rows[k:k + ROWS_PER_FILE])) for k in range(0, len(rows), ROWS_PER_FILE)]
            plan += [(split, shard) for shard in old]    # no file for an empty split: HF datasets rejects empty ones
        return plan

    def schema_of(part) -> pa.Schema:
        return part.schema if isinstance(part, pa.Table) else pq.read_schema(root / part["file"])

    plan = layout(keep)
    schema = pa.unify_schemas([schema_of(part) for _, part in plan], promote_options="permissive")
    first = {split: next(part for s, part in plan if s == split) for split in {s for s, _ in plan}}
    rewrite = [split for split, part in first.items()
               if isinstance(part, dict) and not schema_of(part).equals(schema)]
    if rewrite:
        plan = layout({split: old for split, old in keep.items() if split not in rewrite})
        schema = pa.unify_schemas([schema_of(part) for _, part in plan], promote_options="permissive")
    shards = []
    for split, _ in SPLITS:
        parts = [part for s, part in plan if s == split]
        for k, part in enumerate(parts):
            name = f"{split}-{k:05d}-of-{len(parts):05d}.parquet"
            if isinstance(part, dict):
                shutil.copyfile(root / part["file"], staging / name)
                shards.append({**{key: v for key, v in part.items() if key != "ids"}, "file": f"data/{name}"})
                continue
            pq.write_table(part.cast(schema), staging / name, compression="zstd", compression_level=19)
            shards.append({"file": f"data/{name}", "split": split, "records": part.num_rows,
                           "sha256": sha256_file(staging / name), "bytes": (staging / name).stat().st_size})
    if data.exists():
        for p in data.iterdir():
            p.unlink()
        data.rmdir()
    staging.rename(data)
    summary = json.loads((root / "records" / "summary.json").read_text())
    runs = read_jsonl(root / "work" / "runs.jsonl") if (root / "work" / "runs.jsonl").exists() else []
    per_family_split: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        per_family_split[r["family"]][split_of(r["structural_hash"])] += 1
    first = records[0]
    manifest = {
        "dataset": root.name,
        "device": first["device"],
        "records": len(records),
        "bytes_raw": summary["bytes"],
        "bytes_compressed": sum(s["bytes"] for s in shards),
        "target_bytes": summary["target_bytes"],
        "per_family": dict(sorted(Counter(r["family"] for r in records).items())),
        "generators": dict(sorted(Counter(r["provenance"]["generator"] for r in records).items())),
        "per_family_split": {f: dict(sorted(c.items())) for f, c in sorted(per_family_split.items())},
        "per_split": {s: sum(1 for r in records if split_of(r["structural_hash"]) == s) for s, _ in SPLITS},
        "shards": shards,
        "tools": {k: first["provenance"][k] for k in ("warp", "numpy", "cuda_toolkit", "python", "ptxas")
                  if first["provenance"].get(k) and (k != "ptxas" or first["device"] == "cuda")},
        "factory_seed": first["provenance"]["factory_seed"],
        "arch": first["ir"]["arch"],
        "numerics_devices": dict(Counter(r["verification"]["numerics_device"] for r in records)),
        "optimization_levels": {str(k): v for k, v in sorted(
            Counter(r["provenance"]["optimization_level"] for r in records).items())},
        "gradient_checked": sum(1 for r in records if r["verification"]["gradient_checked"]),
        "stages": dict(Counter(" -> ".join(r["verification"].get("stages", [])) or "unrecorded" for r in records)),
        "tokens": _token_summary(records, runs),
        "with_resources": sum(1 for r in records if r["ir"].get("resources")),
        "rejects": summary["rejects"],
        "dropped": summary["dropped"],
        "runs": runs,
        "wall_seconds": round(sum(r.get("wall_seconds", 0.0) for r in runs), 1),
    }
    if manifest["wall_seconds"]:
        manifest["records_per_second"] = round(sum(r.get("records", 0) for r in runs) / manifest["wall_seconds"], 2)
        manifest["mb_per_second"] = round(sum(r.get("bytes", 0) for r in runs) / 1e6 / manifest["wall_seconds"], 3)
    atomic_write_bytes(root / "manifest.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    atomic_write_bytes(root / "README.md", card(manifest).encode())
    return manifest


def unpack(root: Path, chunk_sizes: dict[str, int]) -> dict:
    """Write the whole chunks of the packed dataset at ``root`` back under ``root/work`` (see the module's doc).

    A chunk is whole when each of its ``chunk_sizes[family]`` kernels is a record here or one of the chunk's own
    rejects. The chunk the cut went through (its records past the cut are not kept) and a chunk with a record
    dropped as a duplicate (kept nowhere) are not whole: a run makes them again, byte-identical. Chunk files
    already under ``work/`` are left as they are. Returns ``{"restored": n, "remade": [(family, chunk, why)]}``."""
    from .plan import Chunk
    from .writer import DatasetDir

    root = Path(root)
    manifest = json.loads((root / "manifest.json").read_text())
    records: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for shard in manifest["shards"]:
        for row in pq.read_table(root / shard["file"]).to_pylist():
            records[(row["family"], row["provenance"]["chunk"])].append(unflatten(row))
    rejects: dict[tuple[str, str], list[dict]] = defaultdict(list)
    dropped: set[tuple[str, str]] = set()
    for row in read_jsonl(root / "rejects.jsonl") if (root / "rejects.jsonl").exists() else []:
        key = (row["family"], row["chunk"])
        if row["reason"].startswith("duplicate"):        # added by the assembly, not one of the chunk's own
            dropped.add(key)
        else:
            rejects[key].append(row)
    dataset = DatasetDir(root, manifest["device"])
    restored, remade = 0, []
    for key in sorted(set(records) | set(rejects)):
        family, name = key
        size = chunk_sizes.get(family)
        made = {r["provenance"]["index"] for r in records[key]} | {r["index"] for r in rejects[key]}
        why = ("its family is not installed" if size is None
               else "a record of it was dropped as a duplicate" if key in dropped
               else f"{size - len(made & set(range(size)))} of its kernels are not in the dataset (the cut)"
               if made != set(range(size)) else None)
        if why:
            remade.append((family, name, why))
            continue
        chunk = Chunk(0, family, name, size)
        if dataset.done(chunk):
            continue
        dataset.write_chunk(chunk, records[key], rejects[key])      # as the run wrote it
        restored += 1
    runs = dataset.work / "runs.jsonl"
    if not runs.exists():
        atomic_write_bytes(runs, "".join(json.dumps(r, sort_keys=True) + "\n" for r in manifest["runs"]).encode())
    return {"restored": restored, "remade": remade}


def _token_summary(records: list[dict], runs: list[dict]) -> dict:
    """cl100k tokens per record (Python + code): total, median, p95, max, and the budget production applied."""
    totals = sorted(r["tokens"]["total"] for r in records if r.get("tokens"))
    budgets = {r.get("token_budget") for r in runs}
    out = {"budget": budgets.pop() if len(budgets) == 1 else None, "records_counted": len(totals)}
    if totals:
        out.update(total=sum(totals), p50=totals[len(totals) // 2], p95=totals[int(0.95 * (len(totals) - 1))],
                   max=totals[-1])
    return out


def _rebuilt(m: dict) -> str:
    stages = ", ".join(f"`{k}` {n}" for k, n in m.get("stages", {}).items()) or "unrecorded"
    if m["device"] == "cpu":
        return ("- Every record was rebuilt from its own fields before it was written: Warp's CPU header, then the "
                "record's `ir.support`,\n  `ir.forward` and `ir.backward` alone in a namespace of their own, "
                f"compiled by g++ (`-fsyntax-only`).\n  `verification.stages`: {stages}.")
    ptxas = m["tools"].get("ptxas", "unrecorded")
    return ("- Every record's CUDA code was compiled from its own fields (Warp's CUDA header, then the record's "
            "`ir.support`,\n  `ir.forward` and `ir.backward` alone in a namespace of their own) by NVRTC to PTX and "
            f"assembled by ptxas {ptxas} to SASS for {m['arch']}.\n  `ir.resources` ({m.get('with_resources', 0)} "
            "records) holds each entry's registers, spills and stack (ptxas -v) and shared, local and constant\n"
            f"  memory (cuobjdump on that cubin). `verification.stages`: {stages}.")


def _lengths(m: dict) -> str:
    t = m.get("tokens", {})
    if not t.get("records_counted"):
        return ""
    budget = (f" Production's budget was {t['budget']:,} tokens per record; "
              f"{m['rejects'].get('over_budget', 0):,} longer kernels were rejected (`over_budget`)."
              if t.get("budget") else "")
    return (f"Length (`tokens`, cl100k, Python + generated code): {t['total']:,} tokens in all; per record median "
            f"{t['p50']:,}, p95 {t['p95']:,}, max {t['max']:,}.{budget}")


def card(m: dict) -> str:
    device = m["device"]
    lang = "C++ (Warp CPU backend)" if device == "cpu" else f"CUDA C++ (NVRTC, {m['arch']})"
    numerics = ", ".join(f"{n} on {d}" for d, n in sorted(m["numerics_devices"].items()))
    split_files = "\n".join(f"  - split: {name}\n    path: data/{name}-*.parquet"
                            for name, n in m["per_split"].items() if n)
    levels = ", ".join(f"O{k}" for k in m.get("optimization_levels", {})) or "unrecorded"
    made_by = defaultdict(list)
    for generator, n in m.get("generators", {}).items():
        made_by[generator.split("@")[0]].append(f"`{generator}`" + (f" ({n})" if n != m["per_family"].get(
            generator.split("@")[0]) else ""))
    fam_rows = "\n".join(f"| `{f}` | {n} | {', '.join(made_by[f])} |" for f, n in m["per_family"].items())
    return f"""---
license: apache-2.0
pretty_name: warp-kernel-factory {device} dataset
task_categories:
- text-generation
tags:
- code
- compilers
- nvidia-warp
- {"cpp" if device == "cpu" else "cuda"}
configs:
- config_name: default
  data_files:
{split_files}
---

# warp-kernel-factory — {device} dataset

{m['records']} records pairing a generated NVIDIA Warp kernel (Python) with the {lang} code Warp
{m['tools']['warp']} generated for it: forward and backward (adjoint) functions plus the helper functions and
structs they use. {m['bytes_raw'] / 1e6:.1f} MB of JSON records, {m['bytes_compressed'] / 1e6:.1f} MB as zstd Parquet.

## What was verified, and how
- Every kernel was compiled: by Warp's CPU backend (Clang inside Warp; block_dim 1, tiled kernels at their
  tile width) and, for this dataset's code, {"the same CPU build" if device == "cpu" else "by NVRTC for " + str(m['arch'])}
  (optimisation level {levels}, per record in `provenance.optimization_level`; the generated source does not
  depend on it).
{_rebuilt(m)}
- Every kernel was launched on 3 sets of fresh random inputs and each output element compared with a NumPy
  float64 reference: `|got - expected| <= atol + rtol*|expected|` (exact for integers). `verification` in each
  record gives the tolerance (per output array in `tolerance_per_output` where a family sets them separately),
  the largest errors seen, the number of elements compared and masked (elements where the reference itself is
  unstable under rounding-sized input noise are masked, not compared).
- Numerics were run: {numerics}. `verification.numerics_device` says where, per record.
  {"" if device == "cpu" else "Where it says `cpu`, the numbers are those of the CPU build of the same kernel; the CUDA code itself was compiled to SASS, not run on a GPU."}
- Kernels with constant output, output equal to an input, or output independent of most inputs were rejected.
- Exact duplicates (same id) and structural duplicates (same program after renaming identifiers, replacing
  literals and dropping comments) were removed.

- Gradients: for {m['gradient_checked']} records (`verification.gradient_checked` true) Warp's backward pass was
  run with random output weights and one directional derivative, along one random input direction, compared
  with central differences of the float64 reference within the family's tolerance (not a full Jacobian).

## Where the records deviate from Warp's defaults
- CPU modules are built at block_dim 1 (what CPU launches use; tile kernels at their tile width) and at `-O0`
  (Warp's default CPU level is `-O2`; the generated C++ is the same, the machine code that ran the numbers is not).
  CUDA code is compiled at Warp's default `-O3`.
- `tile_matmul` records hold Warp's portable tile GEMM: they were built with `enable_mathdx_gemm=False`, not the
  MathDx (cuBLASDx) path Warp takes by default on a GPU.
- Modules are built with Warp's `strip_hash` option, so generated names carry the record's content-addressed
  `kernel_name` (`<kernel_name>_cpu_kernel_forward`) instead of Warp's `<key>_<hash8>` suffix.

## What was not verified
- The backward code of the other {m['records'] - m['gradient_checked']} records was compiled, not run (integer
  kernels, kernels marked non-differentiable because Warp 1.19's adjoint is known to be incomplete for what
  they use, and kernels with in-place outputs).
- Performance of the generated code, and behaviour on inputs outside the sampled ranges.

## Contents
| family | records | made by |
|---|---|---|
{fam_rows}

Splits by `structural_hash` (90/5/5): {m['per_split']}. Inside a file, rows are grouped by family (it
compresses better); a dataset grown after an earlier pack keeps that pack's files and puts the new records in
files of their own, first in each split: shuffle before training.

{_lengths(m)}

Load offline:
```python
from datasets import load_dataset
ds = load_dataset("parquet", data_files={{"train": "data/train-*.parquet"}})
import pandas as pd
df = pd.read_parquet("data/")
```

Fields are described in the project README ("Data format"); `features` is a JSON string.
Seed {m['factory_seed']}; tools {m['tools']}. `manifest.json` lists every shard with its sha256.

## License
Apache-2.0. The kernels are synthetic; the generated code is the output of NVIDIA Warp (Apache-2.0).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wkf-pack", description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--repack", action="store_true", help="rewrite every Parquet file (default: keep the files "
                                                               "whose rows are all still in the dataset)")
    parser.add_argument("--unpack", action="store_true", help="write the packed dataset's whole chunks back under "
                                                               "work/, to grow it with a production run")
    args = parser.parse_args(argv)
    for root in args.datasets:
        if args.unpack:
            from .session import project_families

            families = project_families(Path.cwd())
            done = unpack(root, {name: f.chunk_size for name, f in families.items()})
            print(f"{root}: {done['restored']} chunks written back under work/; a production run remakes "
                  f"{len(done['remade'])}:")
            for family, name, why in done["remade"]:
                print(f"  {family}/{name}: {why}")
            continue
        m = pack(root, repack=args.repack)
        print(f"{root}: {m['records']} records, {m['bytes_raw'] / 1e6:.1f} MB raw -> "
              f"{m['bytes_compressed'] / 1e6:.1f} MB in {len(m['shards'])} parquet files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
