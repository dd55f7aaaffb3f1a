"""Saturation of the generators: distinct programs per family as a generator runs longer (generation only).

    python -m report.saturation [--programs 10000] [--workers 2] [--out report/saturation.json]
    python -m report.saturation --programs 10000 --families math tiles --merge    (longer curves for some families)

For each family, programs ``0 .. N-1`` of a seed stream of their own (``kernel_seed(0, family, "saturation", i)``,
disjoint from production's chunks) are generated and reduced to their structural hash
(:func:`harness.record.structural_hash`: names, numeric literals and comments normalised, the key production
de-duplicates on). The count of distinct hashes is written at checkpoints (1, 2, 5 x 10^k up to N). Nothing is
compiled, so the curve measures the grammars, not the verification. Each family's entry says how many programs
it was run for (``programs``); ``--merge`` replaces the named families in an existing file and keeps the others,
so the cheap generators can run longer than the expensive ones. The report reads the JSON; it never runs this
script (the build stays offline and fast).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from harness.writer import atomic_write_bytes


def checkpoints(n: int) -> list[int]:
    points, scale = [], 1
    while scale <= n:
        points += [c * scale for c in (1, 2, 5) if c * scale <= n]
        scale *= 10
    return sorted(set(points) | {n})


def family_curve(name: str, n: int) -> dict:
    from harness.record import structural_hash
    from harness.registry import all_families
    from harness.seeds import kernel_seed, rng_for

    family = all_families()[name]
    marks = set(checkpoints(n))
    seen: set[str] = set()
    curve = []
    t0 = time.perf_counter()
    errors: list[dict] = []
    for i in range(n):
        seed = kernel_seed(0, name, "saturation", i)
        try:
            seen.add(structural_hash(family.spec(seed, rng_for(seed)).source))
        except Exception as exc:  # noqa: BLE001 - a generator that raises costs its program, as in production
            errors.append({"index": i, "seed": seed, "error": f"{type(exc).__name__}: {exc}"[:200]})
        if i + 1 in marks:
            curve.append(len(seen))
    return {"distinct": curve, "programs": n, "checkpoints": checkpoints(n), "seconds": round(time.perf_counter() - t0, 1),
            "generator": f"{name}@{family.version}", "generator_errors": errors}


def with_programs(curve: dict, whole: dict) -> dict:
    """A family's curve with its own ``programs`` and ``checkpoints`` (older files kept them file-wide)."""
    n = curve.get("programs") or whole["programs_per_family"]
    return {**curve, "programs": n, "checkpoints": curve.get("checkpoints") or checkpoints(n)}


def contributing(runs: list[dict]) -> list[dict]:
    """The runs that still measure a family: a run whose every family a later run measured again is dropped
    (its time no longer stands behind any curve)."""
    latest = {f: i for i, r in enumerate(runs) for f in r["families"]}
    return [r for i, r in enumerate(runs) if any(latest[f] == i for f in r["families"])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m report.saturation", description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=10_000, help="programs per family (default 10000)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--out", type=Path, default=Path("report/saturation.json"))
    parser.add_argument("--families", nargs="*", default=None, help="default: every family")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other families of an existing --out file (their own program counts)")
    args = parser.parse_args(argv)
    if args.programs < 1:
        parser.error(f"--programs must be a positive integer; got {args.programs}")
    from harness.registry import all_families

    names = args.families or sorted(all_families())
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        curves = dict(zip(names, pool.map(family_curve, names, [args.programs] * len(names))))
    for name, c in curves.items():
        print(f"{name:<18}{c['distinct'][-1]:>8} distinct of {args.programs} in {c['seconds']:.0f} s", flush=True)
    run = {"families": names, "programs": args.programs, "workers": args.workers,
           "wall_seconds": round(time.perf_counter() - t0, 1)}
    old = json.loads(args.out.read_text()) if args.merge and args.out.exists() else {"families": {}, "runs": []}
    families = {**{f: with_programs(v, old) for f, v in old["families"].items()}, **curves}
    runs = old.get("runs") or ([{"families": sorted(old["families"]), "programs": old["programs_per_family"],
                                 "workers": old["workers"], "wall_seconds": old["wall_seconds"]}]
                               if old["families"] else [])
    result = {"programs_per_family": max(v["programs"] for v in families.values()),
              "seed_stream": 'kernel_seed(0, family, "saturation", i)', "runs": contributing(runs + [run]),
              "families": dict(sorted(families.items()))}
    atomic_write_bytes(args.out, (json.dumps(result, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
