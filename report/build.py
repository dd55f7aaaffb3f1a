"""Build the technical report from the packed datasets: ``REPORT.md``, ``numbers.json`` and ``figures/*.png``.

    python -m report.build [--data production] [--bench report/bench/stages.json] [--out report]

Reads ``<data>/cpu_code`` and ``<data>/cuda_code`` (``data/*.parquet``, ``manifest.json``, ``rejects.jsonl``),
the pytest-benchmark JSON of ``tests/bench`` (optional: ``--bench PATH``, by default
``report/bench/stages.json`` when it exists; ``tox -e bench`` writes it), and measures the generators' diversity
(``production.diversity.measure``). Token counts use the real ``cl100k_base`` BPE shipped inside the
``bpe-openai`` wheel, so the build needs no network. Every number in the text comes from ``report.stats``;
the prose is ``report/template.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path

from harness.writer import atomic_write_bytes

from . import figures, render, stats

HERE = Path(__file__).resolve().parent
DEFAULT_BENCH = Path("report/bench/stages.json")


def _log(message: str) -> None:
    print(f"[report] {message}", file=sys.stderr, flush=True)


def encoder():
    try:
        import bpe_openai
    except ImportError as exc:
        raise stats.ReportInputError("the report needs the offline BPE tokenizer: pip install bpe-openai") from exc
    return bpe_openai.get_encoding("cl100k_base")


def build(data: Path, out: Path, bench_path: Path | None, *, token_sample: int = 2000, diversity_kernels: int = 100,
          diversity_json: Path | None = None, run_validate: bool = True, template: Path | None = None,
          command: str = "python -m report.build") -> dict:
    """Compute, draw and write the report; return the numbers written to ``numbers.json``."""
    t0 = time.perf_counter()
    enc = encoder()
    catalog = stats.family_catalog()
    chunk_sizes = {name: f["chunk_size"] for name, f in catalog.items()}
    datasets, numbers, series = {}, {}, {}
    for device in stats.DEVICES:
        t = time.perf_counter()
        ds = stats.load_dataset(Path(data) / f"{device}_code", device)
        datasets[device] = ds
        numbers[device], series[device] = stats.dataset_numbers(ds, enc, token_sample, run_validate, chunk_sizes)
        _log(f"{ds.root}: {len(ds.rows)} records analysed in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    diversity = stats.diversity_numbers(diversity_kernels, diversity_json,
                                        sorted(catalog) or sorted({f for x in numbers.values() for f in x["families"]}))
    _log(f"generator diversity ({diversity['source']}) in {time.perf_counter() - t:.1f} s")
    bench = stats.bench_numbers(bench_path)
    if bench_path is not None and bench is None:
        _log(f"no benchmark JSON at {bench_path}: the report quotes no stage rates")
    elif bench is not None and not bench["rows"]:
        _log(f"{bench_path} holds no benchmark results (all skipped or deselected?): the report quotes no stage rates")
        bench = None
    result = {
        "report": {
            "command": command,
            "data": str(data),
            "tokenizer": {"package": "bpe-openai", "version": _version("bpe-openai"), "encoding": "cl100k_base",
                          "sample_per_dataset": token_sample},
        },
        "datasets": numbers,
        "overlap": stats.overlap_numbers(datasets),
        "bench": bench,
        "diversity": diversity,
        "families": catalog,
        "warp_corpus": stats.warp_corpus(),
    }
    figures_dir = Path(out) / "figures"
    drawn = figures.draw_all(numbers, series, bench, figures_dir)
    for stale in figures_dir.glob("*.png"):      # a figure this build did not draw (e.g. no benchmark) must go
        if stale.name not in drawn.values():
            stale.unlink()
    result["figures"] = {k: f"figures/{v}" for k, v in sorted(drawn.items())}
    meta = {"command": command, "data_dir": str(data), "bench": str(bench_path) if bench else None,
            "bpe_version": result["report"]["tokenizer"]["version"]}
    ctx = render.context(result, result["families"], drawn, datasets, meta)
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
    parser = argparse.ArgumentParser(prog="python -m report.build", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("production"),
                        help="folder holding cpu_code/ and cuda_code/ (default: production)")
    parser.add_argument("--bench", type=Path, default=None,
                        help=f"pytest-benchmark JSON of tests/bench (default: {DEFAULT_BENCH} when it exists)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="where REPORT.md, numbers.json and "
                                                                          "figures/ go (default: report)")
    parser.add_argument("--token-sample", type=_positive, default=2000,
                        help="records per dataset whose tokens are counted (default 2000; the smallest ids)")
    parser.add_argument("--diversity-kernels", type=_positive, default=100,
                        help="programs per family for production.diversity.measure (default 100)")
    parser.add_argument("--diversity-json", type=Path, default=None,
                        help="use a JSON written by `wkf-diversity --json` instead of measuring")
    parser.add_argument("--no-validate", action="store_true", help="skip wkf-validate (schema, sha256) checks")
    args = parser.parse_args(argv)
    bench = args.bench
    if bench is None and DEFAULT_BENCH.exists():
        bench = DEFAULT_BENCH
    elif bench is not None and not bench.exists():
        parser.error(f"--bench {bench}: no such file (run: pytest tests/bench -p no:xdist --benchmark-only "
                     f"--benchmark-json={bench})")
    try:
        build(args.data, args.out, bench, token_sample=args.token_sample, diversity_kernels=args.diversity_kernels,
              diversity_json=args.diversity_json, run_validate=not args.no_validate,
              command=" ".join(["python -m report.build", *map(shlex.quote, argv)]))
    except (stats.ReportInputError, render.RenderError) as exc:
        print(f"report.build: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
