"""Benchmark mode, worker side: the predictions file is collected as a pytest file of one item per prediction.

Each item sends its prediction to this process's judge child (:class:`harness.isolation.JudgeProcess`) and hangs
the verdict on its test report (``user_properties``), from where the controller writes results. An item
passes when the judge reached a verdict, whatever the verdict; it fails only when the judge itself broke.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from .eval_options import EvalSettings
from .isolation import JudgeProcess
from .predictions import Prediction, load_predictions, load_split

EVAL_KEY = "wkf_eval"
SETTINGS_KEY = pytest.StashKey[EvalSettings]()
JUDGE_KEY = pytest.StashKey[JudgeProcess]()
DATA_KEY = pytest.StashKey[tuple]()

#: what the child needs of a record (it regenerates everything else from family@version and seed)
RECORD_FIELDS = ("id", "family", "kernel_name", "provenance", "device")


def dataset_and_predictions(config: pytest.Config) -> tuple[dict[str, dict], list[Prediction]]:
    """The records of the dataset's split (``--eval-split``, test by default) and the checked predictions, read
    once per process."""
    if DATA_KEY not in config.stash:
        settings = config.stash[SETTINGS_KEY]
        device, records = load_split(settings.dataset, settings.split)
        config.stash[DATA_KEY] = (records, load_predictions(settings.predictions, records, device, settings.split))
    return config.stash[DATA_KEY]


def judge_process(config: pytest.Config) -> JudgeProcess:
    if JUDGE_KEY not in config.stash:
        settings = config.stash[SETTINGS_KEY]
        log = Path(tempfile.gettempdir()) / f"wkf-judge-{Path(settings.predictions).stem}.log"
        config.stash[JUDGE_KEY] = JudgeProcess(settings.timeout_s, settings.memory_mb, stderr_path=log)
    return config.stash[JUDGE_KEY]


class PredictionsFile(pytest.File):
    def collect(self):
        records, predictions = dataset_and_predictions(self.config)
        for pred in predictions:
            item = PredictionItem.from_parent(self, name=f"line{pred.line}[{pred.task}]", prediction=pred,
                                              record=records[pred.id])
            item.add_marker(pytest.mark.eval)
            yield item


class PredictionItem(pytest.Item):
    def __init__(self, *, prediction: Prediction, record: dict, **kwargs):
        super().__init__(**kwargs)
        self.prediction = prediction
        self.record = record

    def runtest(self) -> None:
        pred, record = self.prediction, self.record
        settings = self.config.stash[SETTINGS_KEY]
        answer = judge_process(self.config).judge({
            "record": {k: record[k] for k in RECORD_FIELDS}, "task": pred.task, "completion": pred.completion,
            "cuda_arch": settings.cuda_arch})
        if "error" in answer:
            raise JudgeBroke(f"line {pred.line} ({pred.task}, id {pred.id}): the judge failed, not the "
                             f"prediction:\n{answer['error']}")
        message = answer["message"]
        if answer["outcome"] == "invalid":
            message = f"line {pred.line}: {message}"
        self.user_properties.append((EVAL_KEY, {
            "line": pred.line, "id": pred.id, "task": pred.task, "family": record["family"], "sample": pred.sample,
            "outcome": answer["outcome"], "message": message, "device": answer.get("device"),
            "outputs_sha256": answer.get("outputs_sha256")}))

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, JudgeBroke):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.prediction.task} {self.record['family']} line {self.prediction.line}"


class JudgeBroke(Exception):
    """The harness, not the prediction, failed (a dataset the installed generators do not reproduce...)."""
