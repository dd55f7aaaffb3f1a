"""Combine the outputs of sharded production runs (``pytest -m production --shard I/N``) into one dataset.

Each shard wrote whole chunks (``work/chunks/<family>/<chunk>.jsonl``) for the chunk positions it owns. The
merge copies them into OUT, then assembles and packs exactly as a single-machine run would: canonical order,
dedup, cut to target. So the union of N shards gives the same records as one machine.

    wkf-merge --target-mb 200 production/cpu_code shard0/ shard1/ shard2/
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from harness.plan import covering_prefix
from harness.session import project_families
from harness.writer import DatasetDir, atomic_write_bytes


def merge(out: Path, shards: list[Path], target_bytes: int, pack_after: bool = True,
          rootdir: Path | None = None) -> dict:
    """``rootdir``: the project whose ``kernels/`` defines the families (default: the current directory's,
    else the installed package's)."""
    out = Path(out)
    families = project_families(Path(rootdir or Path.cwd()))
    device = None
    present: set[tuple[str, str]] = set()
    for shard in shards:
        for kind in ("chunks", "rejects"):
            for src in sorted((Path(shard) / "work" / kind).glob("*/*.jsonl")):
                dst = out / "work" / kind / src.parent.name / src.name
                if kind == "chunks":
                    present.add((src.parent.name, src.stem))
                if not dst.exists():
                    atomic_write_bytes(dst, src.read_bytes())
        for runs in (Path(shard) / "work").glob("runs.jsonl"):
            with open(out / "work" / "runs.jsonl", "a", encoding="utf-8") as fh:
                fh.write(runs.read_text(encoding="utf-8"))
    for src in sorted((out / "work" / "chunks").glob("*/*.jsonl")):
        present.add((src.parent.name, src.stem))
        if device is None and src.stat().st_size:
            import json

            device = json.loads(src.open(encoding="utf-8").readline())["device"]
    plan = covering_prefix(families, present)
    dataset = DatasetDir(out, device or "cpu")
    shutil.rmtree(out / "records", ignore_errors=True)
    summary = dataset.assemble(plan, target_bytes)
    if pack_after:
        from harness.pack import pack

        pack(out)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wkf-merge", description=__doc__.splitlines()[0])
    parser.add_argument("--target-mb", type=float, required=True)
    parser.add_argument("out", type=Path)
    parser.add_argument("shards", nargs="+", type=Path)
    args = parser.parse_args(argv)
    summary = merge(args.out, args.shards, int(round(args.target_mb * 1_000_000)))
    print(f"{args.out}: {summary['records']} records, {summary['bytes'] / 1e6:.2f} MB from {len(args.shards)} shards")
    return 0


if __name__ == "__main__":
    sys.exit(main())
