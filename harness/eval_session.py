"""Benchmark mode, controller side: collect verdicts from reports, write results and the summary, print it.

Registered instead of the factory session when ``--predictions``/``--dataset``/``-m eval`` are given. It writes
only under ``--eval-out`` (never the dataset): ``results.jsonl`` (one line per prediction, in file order),
``summary.json`` and ``summary.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .eval_items import EVAL_KEY, JUDGE_KEY, SETTINGS_KEY, PredictionsFile, dataset_and_predictions
from .eval_options import EvalSettings
from .passk import summarize, summary_markdown
from .predictions import PredictionsError

RESULT_FIELDS = ("id", "task", "family", "sample", "outcome", "message", "device", "outputs_sha256")


def configure_eval(config: pytest.Config, settings: EvalSettings) -> None:
    config.addinivalue_line("markers", "eval: one prediction judged by the benchmark (select with -m eval)")
    config.stash[SETTINGS_KEY] = settings
    config.args = [str(settings.predictions)]          # collect the predictions, not the tests or the families
    if getattr(config, "workerinput", None) is None:
        try:                                            # bad input stops the run before anything is judged
            dataset_and_predictions(config)
        except PredictionsError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.pluginmanager.register(EvalController(settings), "wkf-eval-controller")
    config.pluginmanager.register(EvalCollector(settings), "wkf-eval-collector")


class EvalCollector:
    def __init__(self, settings: EvalSettings):
        self.settings = settings

    @pytest.hookimpl
    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector):
        if Path(file_path).resolve() == self.settings.predictions:
            return PredictionsFile.from_parent(parent, path=file_path)
        return None

    @pytest.hookimpl
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        judge = config.stash.get(JUDGE_KEY, None)
        if judge is not None:
            judge.close()


class EvalController:
    def __init__(self, settings: EvalSettings):
        self.settings = settings
        self.rows: list[dict] = []
        self.summary: dict | None = None

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for key, value in report.user_properties:
            if key == EVAL_KEY:
                self.rows.append(value)

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.rows:
            return
        self.rows.sort(key=lambda r: r["line"])
        out = self.settings.out
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "results.jsonl", "w", encoding="utf-8") as f:
            for r in self.rows:
                f.write(json.dumps({k: r[k] for k in RESULT_FIELDS}, sort_keys=True) + "\n")
        self.summary = {"dataset": str(self.settings.dataset), "split": self.settings.split,
                        "predictions_file": str(self.settings.predictions), **summarize(self.rows)}
        (out / "summary.json").write_text(json.dumps(self.summary, indent=1, sort_keys=True) + "\n")
        (out / "summary.md").write_text(summary_markdown(self.summary))

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.summary is None:
            return
        terminalreporter.section("warp-kernel-factory benchmark")
        for line in summary_markdown(self.summary).splitlines():
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"results: {self.settings.out / 'results.jsonl'}; summary: "
                                    f"{self.settings.out / 'summary.json'}, {self.settings.out / 'summary.md'}")
