"""Options of the benchmark mode (``pytest -m eval --predictions F --dataset D``), validated where they enter."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from .options import positive_number

SPLITS = ("test", "validation", "train")


parse_timeout = positive_number("--eval-timeout", "seconds")


def parse_memory(value: str) -> int:
    if not value.isdigit() or int(value) < 256:
        raise pytest.UsageError(f"--eval-memory-mb must be an integer >= 256 (MB of address space); got {value!r}")
    return int(value)


def add_eval_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("warp-kernel-factory benchmark")
    group.addoption("--predictions", dest="wkf_predictions", type=Path, default=None, metavar="FILE",
                    help="benchmark mode: judge the predictions in FILE (JSON lines, harness/predictions.schema.json)")
    group.addoption("--dataset", dest="wkf_dataset", type=Path, default=None, metavar="DIR",
                    help="benchmark mode: the packed dataset folder whose split (--eval-split) the predictions refer to")
    group.addoption("--eval-split", dest="wkf_eval_split", choices=SPLITS, default="test",
                    help="benchmark mode: the split whose records the predictions refer to; default test (the "
                         "benchmark); validation for development without touching the test split")
    group.addoption("--eval-out", dest="wkf_eval_out", type=Path, default=Path("eval_out"), metavar="DIR",
                    help="benchmark mode: where results.jsonl, summary.json and summary.md go (default ./eval_out)")
    group.addoption("--eval-timeout", dest="wkf_eval_timeout", type=parse_timeout, default=60.0, metavar="S",
                    help="benchmark mode: seconds one prediction may take (compile + 3 input sets); default 60")
    group.addoption("--eval-memory-mb", dest="wkf_eval_memory", type=parse_memory, default=4096, metavar="N",
                    help="benchmark mode: address space the judge process may grow by per prediction; default 4096")


@dataclass(frozen=True, slots=True)
class EvalSettings:
    predictions: Path
    dataset: Path
    out: Path
    timeout_s: float
    memory_mb: int
    cuda_arch: int
    split: str = "test"

    @classmethod
    def from_config(cls, config: pytest.Config) -> "EvalSettings | None":
        """None outside benchmark mode; a usage error when the mode is asked for but incomplete or unsafe."""
        predictions, dataset = config.getoption("wkf_predictions"), config.getoption("wkf_dataset")
        markexpr = config.getoption("markexpr", "") or ""
        asked = "eval" in markexpr.replace("not eval", "")
        if predictions is None and dataset is None and not asked:
            return None
        if predictions is None or dataset is None:
            raise pytest.UsageError("benchmark mode needs both --predictions FILE and --dataset DIR")
        base = config.invocation_params.dir
        predictions, dataset = (Path(base, predictions).resolve(), Path(base, dataset).resolve())
        out = Path(base, config.getoption("wkf_eval_out")).resolve()
        if not predictions.is_file():
            raise pytest.UsageError(f"--predictions {predictions}: no such file")
        if not (dataset / "data").is_dir():
            raise pytest.UsageError(f"--dataset {dataset}: not a packed dataset folder (no data/)")
        if out == dataset or dataset in out.parents or out.name == "production" or "production" in out.parts[-2:]:
            raise pytest.UsageError(f"--eval-out {out} must not be inside a dataset or production/")
        return cls(predictions, dataset, out, config.getoption("wkf_eval_timeout"),
                   config.getoption("wkf_eval_memory"), config.getoption("wkf_arch"),
                   config.getoption("wkf_eval_split"))
