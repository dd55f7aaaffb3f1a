"""The pytest plugin: options, markers, family collection, and the controller/worker split.

Registered from the root ``conftest.py``. The controller (or the only process, without xdist) builds the
run plan and owns the writer; xdist workers receive the plan in ``workerinput`` and only compute.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .eval_options import EvalSettings, add_eval_options
from .items import PLAN_KEY, FamilyFile, RunPlan
from .options import Settings, add_options
from .registry import is_family_file

SESSION_PLUGIN = "wkf-session"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)
    add_eval_options(parser)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "production: a chunk of the production run (select with -m production)")
    eval_settings = EvalSettings.from_config(config)
    if eval_settings is not None:                      # benchmark mode: judge predictions, write no dataset
        from .eval_session import configure_eval

        configure_eval(config, eval_settings)
        return
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        config.stash[PLAN_KEY] = RunPlan(workerinput["wkf_plan"])
        return
    from .session import FactorySession

    session = FactorySession(config, Settings.from_config(config))
    config.pluginmanager.register(session, SESSION_PLUGIN)
    config.stash[PLAN_KEY] = RunPlan(session.plan_data())
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistController(session), "wkf-xdist-controller")
        # xdist's load scheduler first hands each worker one consecutive block of its share, so the second
        # worker would start far into the canonical order and the dataset's prefix (which decides when the
        # target is reached) would grow at one worker's speed. Small steps keep the workers in order.
        if session.settings.production and getattr(config.option, "maxschedchunk", "absent") is None:
            config.option.maxschedchunk = 1


class _XdistController:
    """Registered only when xdist is present: ships the plan to every worker."""

    def __init__(self, session):
        self.session = session

    @pytest.hookimpl
    def pytest_configure_node(self, node) -> None:
        node.workerinput["wkf_plan"] = self.session.plan_data()


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if is_family_file(file_path):
        return FamilyFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run chunks in the plan's canonical order, so the dataset's prefix finishes first."""
    from .items import ChunkItem

    chunk_items = [i for i in items if isinstance(i, ChunkItem)]
    if not chunk_items:
        return
    others = [i for i in items if not isinstance(i, ChunkItem)]
    items[:] = others + sorted(chunk_items, key=lambda i: i.chunk.order)
