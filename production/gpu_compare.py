"""Compare two CUDA datasets of the same plan kernel by kernel: numbers checked on the CPU build vs on a GPU.

    wkf-gpu-compare production/cuda_code /path/to/cuda_code_gpu [--json FILE]

The CUDA dataset made without a GPU checks each kernel's numbers on the CPU build of the same kernel; made on a
GPU host it checks them on the GPU. Kernels are content-addressed (same seed, same generators -> same kernel
name), so the two runs' verdicts can be set side by side: accepted by both (and how far the largest errors
moved), accepted by one and rejected by the other (with the other's reason: atomics order, fast paths, tiles
in real shared memory...), or in one run only (the target size was reached at a different kernel).
Both folders may be packed (``data/*.parquet``) or not yet (``records/*.jsonl``); rejects come from
``rejects.jsonl`` (or ``work/rejects``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq

from harness.writer import load_records, read_jsonl


def verdicts(root: Path) -> dict[str, dict]:
    """"family/seed" -> {"family", "kernel_name", "accepted": bool, "reason", "numerics_device", "max_abs_err",
    "max_rel_err"} (keyed by seed: kernel names carry a short hash and may repeat across a dataset)."""
    root = Path(root)
    out: dict[str, dict] = {}
    parquet = sorted((root / "data").glob("*.parquet"))
    if parquet:
        rows = [row for path in parquet
                for row in pq.read_table(path, columns=["kernel_name", "family", "verification", "provenance"]).to_pylist()]
    else:
        rows = load_records(root)
    for row in rows:
        v = row["verification"]
        out[f"{row['family']}/{row['provenance']['seed']}"] = {
            "family": row["family"], "kernel_name": row["kernel_name"], "accepted": True, "reason": None,
            "numerics_device": v["numerics_device"], "max_abs_err": v["max_abs_err"], "max_rel_err": v["max_rel_err"]}
    reject_files = [root / "rejects.jsonl"] if (root / "rejects.jsonl").exists() else \
        sorted((root / "work" / "rejects").rglob("*.jsonl"))
    for path in reject_files:
        for rej in read_jsonl(path):
            key = f"{rej['family']}/{rej['seed']}"
            if rej.get("device", "cuda") == "cuda" and rej.get("kernel_name") and key not in out:
                out[key] = {"family": rej["family"], "kernel_name": rej["kernel_name"], "accepted": False,
                            "reason": rej["reason"], "message": rej.get("message", "")[:300]}
    return out


def compare(a: dict[str, dict], b: dict[str, dict]) -> dict:
    """Side by side verdicts of run ``a`` and run ``b``; JSON-able."""
    kinds: Counter = Counter()
    by_family: dict[str, Counter] = defaultdict(Counter)
    changed, error_moves = [], []
    for name in sorted(a.keys() | b.keys()):
        x, y = a.get(name), b.get(name)
        if x is None or y is None:
            kind = "only_a" if y is None else "only_b"
        elif x["accepted"] and y["accepted"]:
            kind = "both_accepted"
            error_moves.append(abs(y["max_rel_err"] - x["max_rel_err"]))
        elif not x["accepted"] and not y["accepted"]:
            kind = "both_rejected" if x["reason"] == y["reason"] else "rejected_differently"
        else:
            kind = "accepted_by_a_only" if x["accepted"] else "accepted_by_b_only"
        kinds[kind] += 1
        by_family[(x or y)["family"]][kind] += 1
        if kind in ("accepted_by_a_only", "accepted_by_b_only", "rejected_differently"):
            changed.append({"key": name, "kernel_name": (x or y)["kernel_name"], "family": (x or y)["family"],
                            "kind": kind,
                            "a": x.get("reason") or "accepted", "b": y.get("reason") or "accepted",
                            "message": x.get("message") or y.get("message", "")})
    return {"kinds": dict(sorted(kinds.items())),
            "by_family": {f: dict(sorted(c.items())) for f, c in sorted(by_family.items())},
            "reasons_of_changes": dict(Counter(f"{c['a']} -> {c['b']}" for c in changed).most_common()),
            "largest_rel_err_move": max(error_moves, default=0.0),
            "changed": changed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wkf-gpu-compare", description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="CUDA dataset with CPU-build numerics")
    parser.add_argument("b", type=Path, help="CUDA dataset with GPU numerics")
    parser.add_argument("--json", type=Path, help="write the full comparison here")
    args = parser.parse_args(argv)
    result = compare(verdicts(args.a), verdicts(args.b))
    print("verdicts:", ", ".join(f"{k} {n}" for k, n in result["kinds"].items()))
    print("changes (a -> b):", ", ".join(f"{k} {n}" for k, n in result["reasons_of_changes"].items()) or "none")
    print(f"largest move of a shared record's max relative error: {result['largest_rel_err_move']:.3g}")
    for c in result["changed"][:20]:
        print(f"  {c['family']:<16} {c['kernel_name']}: {c['a']} -> {c['b']}  {c['message'][:120]}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
