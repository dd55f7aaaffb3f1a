"""The report's committed side inputs, each optional: the benchmark baselines (``report/benchmark/*.json``), the
judge's cost (``report/bench/judge_cost.json``), the generators' saturation curve (``report/saturation.json``),
construct coverage against Warp's own kernels (``report/coverage.json``), the records checked again by
``wkf-validate --reverify`` (``report/benchmark/reverify.json``), a PTX excerpt
(``report/ptx_excerpt.json``) and the compile cost of batching (``report/bench/stages.json``). A missing file is ``None``, and the report says which one is missing."""

from __future__ import annotations

import json
from pathlib import Path

BASELINES = ("oracle", "mutants", "retrieval")


def _read(path: Path) -> dict | None:
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def baselines(folder: Path) -> dict[str, dict | None]:
    return {name: _read(Path(folder) / f"{name}.json") for name in BASELINES}


def judge_cost(path: Path) -> dict | None:
    """Milliseconds per prediction of the judge and of the compile alone (pytest-benchmark JSON)."""
    data = _read(path)
    if not data:
        return None
    rows = {}
    for b in data.get("benchmarks", []):
        info = b.get("extra_info") or {}
        kind = b.get("param") or b["name"].rsplit("[", 1)[-1].rstrip("]")
        rows[kind] = {"ms_per_prediction": info.get("ms_per_prediction"), "rounds": b["stats"]["rounds"],
                      "predictions_per_round": info.get("predictions_per_round")}
    return {"path": str(path), "rows": rows}


def batching(path: Path) -> dict | None:
    """How much slower one kernel per module compiles than batched modules, per family measured (the stage
    benchmark's ``compile-cpu`` group: ``<family>-batched``, ``<family>-naive-O0``, ``<family>-naive-O2``):
    ``o0`` is the gain of batching alone (same level), ``o2`` batching and ``-O0`` together."""
    data = _read(path)
    if not data:
        return None
    rows: dict[str, dict] = {}
    for b in data.get("benchmarks", []):
        if b.get("group") != "compile-cpu":
            continue
        param = b.get("param") or b["name"].rsplit("[", 1)[-1].rstrip("]")
        family, _, kind = param.partition("-")
        rows.setdefault(family, {})[kind] = {"ms_per_kernel": (b.get("extra_info") or {}).get("ms_per_kernel"),
                                             "rounds": b["stats"]["rounds"], "k": (b.get("extra_info") or {}).get("K")}
    families = {}
    for family, kinds in sorted(rows.items()):
        batched = kinds.get("batched", {}).get("ms_per_kernel")
        o0, o2 = kinds.get("naive-O0", {}), kinds.get("naive-O2", {})
        if batched and o0.get("ms_per_kernel") and o2.get("ms_per_kernel"):
            families[family] = {"o0": o0["ms_per_kernel"] / batched, "o2": o2["ms_per_kernel"] / batched,
                                "rounds": sorted({kinds["batched"]["rounds"], o0["rounds"], o2["rounds"]}),
                                "k": kinds["batched"].get("k")}
    return {"path": str(path), "families": families} if families else None


def load_all(root: Path) -> dict:
    root = Path(root)
    return {"baselines": baselines(root / "benchmark"), "judge_cost": judge_cost(root / "bench" / "judge_cost.json"),
            "saturation": _read(root / "saturation.json"), "coverage": _read(root / "coverage.json"),
            "ptx": _read(root / "ptx_excerpt.json"), "batching": batching(root / "bench" / "stages.json"),
            "reverify": _read(root / "benchmark" / "reverify.json")}
