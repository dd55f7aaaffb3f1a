"""Statistics of packed datasets: per-family counts, record and code sizes, verification errors.

    wkf-analyze production/cpu_code production/cuda_code [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from harness.pack import unflatten


def load(root: Path) -> list[dict]:
    rows = []
    for path in sorted((Path(root) / "data").glob("*.parquet")):
        rows.extend(unflatten(row) for row in pq.read_table(path).to_pylist())
    return rows


def _dist(values) -> dict:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {}
    return {"n": int(a.size), "min": float(a.min()), "p50": float(np.percentile(a, 50)),
            "mean": float(a.mean()), "p95": float(np.percentile(a, 95)), "max": float(a.max())}


def analyze(root: Path) -> dict:
    rows = load(root)
    fams = defaultdict(list)
    for r in rows:
        fams[r["family"]].append(r)

    def stats(rs):
        return {
            "records": len(rs),
            "python_chars": _dist([len(r["python_source"]) for r in rs]),
            "forward_chars": _dist([len(r["ir"]["forward"]) for r in rs]),
            "backward_chars": _dist([len(r["ir"]["backward"] or "") for r in rs]),
            "support_chars": _dist([len(r["ir"]["support"]) for r in rs]),
            "max_abs_err": _dist([r["verification"]["max_abs_err"] for r in rs]),
            "max_rel_err": _dist([r["verification"]["max_rel_err"] for r in rs]),
            "masked_fraction": _dist([r["verification"]["elements_masked"] /
                                      (r["verification"]["elements_masked"] + r["verification"]["elements_compared"])
                                      for r in rs]),
            "dtypes": dict(sorted(_count(r["features"].get("dtype", "?") for r in rs).items())),
        }

    from production.hygiene import summarize
    from production.neardup import near_duplicate_numbers

    return {"dataset": str(root), "overall": stats(rows), "per_family": {f: stats(rs) for f, rs in sorted(fams.items())},
            "near_duplicates": near_duplicate_numbers(rows), "resources": resource_summary(rows),
            "tokens": {f: _dist([r["tokens"]["total"] for r in rs if r.get("tokens")]) for f, rs in sorted(fams.items())},
            "hygiene": summarize({f: [r["python_source"] for r in rs] for f, rs in fams.items()})}


RESOURCE_KEYS = ("registers", "spill_store_bytes", "spill_load_bytes", "stack_frame_bytes", "shared_bytes",
                 "local_bytes", "constant_bytes")


def resource_summary(rows: list[dict]) -> dict:
    """Per family and entry (forward/backward): distributions of what ptxas/cuobjdump reported (CUDA records)."""
    out: dict = {}
    for r in rows:
        res = (r["ir"] or {}).get("resources")
        if not res:
            continue
        for kind in ("forward", "backward"):
            if res.get(kind):
                slot = out.setdefault(r["family"], {}).setdefault(kind, {k: [] for k in RESOURCE_KEYS})
                for k in RESOURCE_KEYS:
                    slot[k].append(res[kind][k])
    return {fam: {kind: {k: _dist(v) | {"nonzero": int(np.count_nonzero(v))} for k, v in d.items()}
                  for kind, d in kinds.items()} for fam, kinds in sorted(out.items())}


def _count(values):
    out = defaultdict(int)
    for v in values:
        out[str(v)] += 1
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wkf-analyze", description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, default=None, help="also write the statistics as JSON")
    args = parser.parse_args(argv)
    results = []
    for root in args.datasets:
        res = analyze(root)
        results.append(res)
        o = res["overall"]
        print(f"== {root}: {o['records']} records")
        print(f"{'family':<16}{'records':>9}{'py chars p50':>14}{'fwd p50':>10}{'bwd p50':>10}"
              f"{'max rel err p95':>17}{'masked mean':>13}")
        for fam, s in list(res["per_family"].items()) + [("ALL", o)]:
            print(f"{fam:<16}{s['records']:>9}{s['python_chars'].get('p50', 0):>14.0f}"
                  f"{s['forward_chars'].get('p50', 0):>10.0f}{s['backward_chars'].get('p50', 0):>10.0f}"
                  f"{s['max_rel_err'].get('p95', 0):>17.3g}{s['masked_fraction'].get('mean', 0):>13.3f}")
        print(f"dtypes: {o['dtypes']}")
        if res["resources"]:
            print("CUDA resources per entry (ptxas/cuobjdump on the records' SASS for their arch):")
            print(f"{'family':<16}{'entry':<10}{'regs p50':>9}{'regs max':>9}{'spilling':>9}{'stack p95':>10}"
                  f"{'smem p50':>9}{'cmem p50':>9}")
            for fam, kinds in res["resources"].items():
                for kind, d in kinds.items():
                    print(f"{fam:<16}{kind:<10}{d['registers']['p50']:>9.0f}{d['registers']['max']:>9.0f}"
                          f"{d['spill_store_bytes']['nonzero']:>9}{d['stack_frame_bytes']['p95']:>10.0f}"
                          f"{d['shared_bytes']['p50']:>9.0f}{d['constant_bytes']['p50']:>9.0f}")
        hy = res["hygiene"]
        print(f"source hygiene (records with at least one; lines over {hy['long_line']} characters): "
              + ", ".join(f"{k} {v['records']}" for k, v in hy["overall"].items() if k != "records"))
        noisy = {f: {k: v["records"] for k, v in d.items() if k != "records" and v["records"]}
                 for f, d in hy["per_family"].items()}
        for fam, kinds in noisy.items():
            if kinds:
                print(f"  {fam:<16}" + ", ".join(f"{k} {n}" for k, n in kinds.items()))
        nd = res["near_duplicates"]
        print(f"near-duplicates (token 5-gram Jaccard): {nd['with_neighbour_ge_0.8']} of {nd['records']} records "
              f"have a neighbour >= 0.8 {nd['per_family_ge_0.8']}, {nd['with_neighbour_ge_0.9']} >= 0.9")
    from production.coverage import compare, summary_lines

    cov = compare(args.datasets)
    print("\n".join(summary_lines(cov)))
    for res, ds in zip(results, cov["datasets"]):
        res["coverage"] = {k: ds[k] for k in ("divergence_jsd_vs_non_test", "divergence_jsd_vs_all", "gap")}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
