"""Structural uniqueness of each family's generator: N programs per family, names, numeric literals and
comments normalised (``harness.record.structural_hash``). No compiling; this measures the generators.

    wkf-diversity --kernels 2000 [--json report/diversity.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.record import structural_hash
from harness.registry import all_families
from harness.seeds import kernel_seed, rng_for


def measure(n: int, names: list[str] | None = None) -> dict:
    families = all_families()
    out = {}
    for name in names or sorted(families):
        family = families[name]
        hashes, exact = set(), set()
        for i in range(n):
            seed = kernel_seed(0, name, "diversity", i)
            spec = family.spec(seed, rng_for(seed))
            hashes.add(structural_hash(spec.source))
            exact.add(spec.source)
        out[name] = {"programs": n, "exact_unique": len(exact), "structural_unique": len(hashes),
                     "structural_unique_fraction": round(len(hashes) / n, 4)}
    total = sum(v["programs"] for v in out.values())
    out["_overall"] = {"programs": total, "structural_unique": sum(v["structural_unique"] for v in out.values()),
                       "structural_unique_fraction": round(sum(v["structural_unique"] for v in out.values()) / total, 4)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wkf-diversity", description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=2000)
    parser.add_argument("--family", action="append", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = measure(args.kernels, args.family)
    print("| family | programs | structurally unique |\n|---|---|---|")
    for name, v in result.items():
        label = "**all**" if name == "_overall" else f"`{name}`"
        print(f"| {label} | {v['programs']} | {v['structural_unique']} ({100 * v['structural_unique_fraction']:.1f}%) |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
