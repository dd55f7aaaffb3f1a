"""A real PTX excerpt for the report's background section, from one CUDA record's own code.

    python -m report.ptx_excerpt [--data production/cuda_code] [--family arithmetic] [--out report/ptx_excerpt.json]

Takes the family's CUDA record with the shortest forward code among those at or above its family's median
Python length (a typical, not a trivial, kernel), assembles it exactly as production did
(:func:`harness.sass.assemble`: NVRTC to PTX for the record's ``ir.arch``, then ptxas), and writes the forward
entry's PTX, the record's Python source and the resources ptxas reported to a JSON the report
reads. Run once after the CUDA dataset changes; the report build itself compiles nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

import pyarrow.parquet as pq

from harness.writer import atomic_write_bytes

ENTRY = re.compile(r"^\.visible \.entry (\w+)\(", re.M)


def pick(rows: list[dict], family: str) -> dict:
    fam = [r for r in rows if r["family"] == family]
    if not fam:
        raise SystemExit(f"no {family} record in the dataset")
    median = statistics.median(len(r["python_source"]) for r in fam)
    typical = [r for r in fam if len(r["python_source"]) >= median]
    return min(typical, key=lambda r: (len(r["ir"]["forward"]), r["id"]))


def forward_entry(ptx: str, kernel_name: str) -> list[str]:
    """The lines of the ``.entry <kernel_name>_cuda_kernel_forward`` function, up to its closing brace."""
    lines = ptx.splitlines()
    start = next(i for i, line in enumerate(lines) if ENTRY.match(line)
                 and ENTRY.match(line).group(1) == f"{kernel_name}_cuda_kernel_forward")
    end = next(i for i in range(start, len(lines)) if lines[i] == "}")
    return lines[start:end + 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m report.ptx_excerpt", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("production/cuda_code"))
    parser.add_argument("--family", default="arithmetic")
    parser.add_argument("--out", type=Path, default=Path("report/ptx_excerpt.json"))
    args = parser.parse_args(argv)
    manifest = json.loads((args.data / "manifest.json").read_text(encoding="utf-8"))
    rows = []
    for shard in manifest["shards"]:
        rows += pq.read_table(args.data / shard["file"], columns=["id", "family", "kernel_name", "python_source",
                                                                   "ir", "launch"]).to_pylist()
    record = pick(rows, args.family)
    import warp as wp

    wp.init()
    from harness.sass import assemble

    arch = int(record["ir"]["arch"].removeprefix("sm_"))
    built = assemble([record["ir"]], record["launch"]["block_dim"] or 256, arch)
    entry = forward_entry(built.ptx, record["kernel_name"])
    result = {"id": record["id"], "family": record["family"], "kernel_name": record["kernel_name"],
              "arch": record["ir"]["arch"], "python_source": record["python_source"],
              "forward_entry": entry,
              "ptx_lines_module": len(built.ptx.splitlines()),
              "resources": built.resources.get(f"{record['kernel_name']}_cuda_kernel_forward", {}),
              "matches_record_resources": built.resources.get(f"{record['kernel_name']}_cuda_kernel_forward", {})
              == (record["ir"].get("resources") or {}).get("forward")}
    atomic_write_bytes(args.out, (json.dumps(result, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    print(f"wrote {args.out}: {record['kernel_name']} forward entry, {len(entry)} PTX lines", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
