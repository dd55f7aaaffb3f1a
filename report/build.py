"""Build the technical report from the committed data: ``REPORT.md``, ``numbers.json`` and ``figures/*.png``.

    wkf-report [--data production] [--out report] [--no-validate]      (= python -m report.build)

Reads ``<data>/cpu_code`` and ``<data>/cuda_code`` (``data/*.parquet``, ``manifest.json``, ``rejects.jsonl``)
and the committed side inputs under ``report/`` (:mod:`report.inputs`: benchmark baselines, judge cost,
saturation curve, coverage, PTX excerpt; each optional, and the report says which is missing). Offline: token
counts are the records' own, nothing is compiled or generated. Every number in the text comes from
``report.stats``; the prose is ``report/template.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path

from harness.record import SCHEMA_VERSION
from harness.writer import atomic_write_bytes

from . import figures, inputs, render, stats

HERE = Path(__file__).resolve().parent


def _log(message: str) -> None:
    print(f"[report] {message}", file=sys.stderr, flush=True)


def build(data: Path, out: Path, *, run_validate: bool = True, template: Path | None = None,
          side_root: Path = HERE, command: str = "wkf-report") -> dict:
    """Compute, draw and write the report; return the numbers written to ``numbers.json``."""
    t0 = time.perf_counter()
    catalog = stats.family_catalog()
    chunk_sizes = {name: f["chunk_size"] for name, f in catalog.items()}
    datasets, numbers, series = {}, {}, {}
    for device in stats.DEVICES:
        t = time.perf_counter()
        ds = stats.load_dataset(Path(data) / f"{device}_code", device)
        datasets[device] = ds
        numbers[device], series[device] = stats.dataset_numbers(ds, run_validate, chunk_sizes)
        _log(f"{ds.root}: {len(ds.rows)} records analysed in {time.perf_counter() - t:.1f} s")
    side = inputs.load_all(side_root)
    result = {"report": {"command": command, "data": str(data)}, "datasets": numbers,
              "overlap": stats.overlap_numbers(datasets), "families": catalog}
    figures_dir = Path(out) / "figures"
    drawn = figures.draw_all(numbers, series, side, figures_dir)
    for stale in figures_dir.glob("*.png"):      # a figure this build did not draw (e.g. no benchmark) must go
        if stale.name not in drawn.values():
            stale.unlink()
    result["figures"] = {k: f"figures/{v}" for k, v in sorted(drawn.items())}
    started = [r.get("started") or "" for d in numbers.values() for r in datasets[d["device"]].manifest.get("runs", [])]
    meta = {"command": command, "data_dir": str(data), "date": max(started)[:10] if any(started) else "unknown",
            "version": _version("warp-kernel-factory"), "schema": SCHEMA_VERSION}
    ctx = render.context(result, result["families"], drawn, datasets, meta, side)
    text = render.fill((template or HERE / "template.md").read_text(encoding="utf-8"), ctx)
    atomic_write_bytes(Path(out) / "REPORT.md", text.encode("utf-8"))
    atomic_write_bytes(Path(out) / "numbers.json",
                       (json.dumps(result, indent=2, sort_keys=True, default=_json_default) + "\n").encode("utf-8"))
    _log(f"wrote {Path(out) / 'REPORT.md'}, {Path(out) / 'numbers.json'} and {len(drawn)} figures in "
         f"{time.perf_counter() - t0:.1f} s")
    return result


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def _json_default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {value!r}")
    return int(value)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="wkf-report", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("production"),
                        help="folder holding cpu_code/ and cuda_code/ (default: production)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="where REPORT.md, numbers.json and "
                                                                          "figures/ go (default: report)")
    parser.add_argument("--no-validate", action="store_true", help="skip wkf-validate (schema, sha256) checks")
    args = parser.parse_args(argv)
    try:
        build(args.data, args.out, run_validate=not args.no_validate,
              command=" ".join(["wkf-report", *map(shlex.quote, argv)]))
    except (stats.ReportInputError, render.RenderError) as exc:
        print(f"wkf-report: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
