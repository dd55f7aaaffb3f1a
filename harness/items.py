"""Worker side: each family file in ``kernels/`` is collected as a pytest module of chunk items.

A chunk item builds its kernels as one Warp module, verifies each on the requested devices, and hangs the
records and rejects on the test report (``user_properties``), from where the controller writes them.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest

from .build import BuildOptions, configure_warp, cuda_available
from .plan import Chunk
from .registry import load_family_file

#: Reasons that fail a quick (CI) test: they mean the family or the harness is wrong, not the sample.
FAILING_REASONS = frozenset({"generator_error", "compile_error", "reference_error", "mismatch", "record_error",
                             "gradient_mismatch"})
REPORT_KEY = "wkf_chunk"


@lru_cache(maxsize=1)
def _warp_ready() -> bool:
    configure_warp()
    return cuda_available()


class FamilyFile(pytest.File):
    """``kernels/<family>.py`` as a pytest module: one item per chunk of the run plan."""

    def collect(self):
        family = load_family_file(self.path)
        plan = self.config.stash[PLAN_KEY]
        for chunk in plan.chunks:
            if chunk.family != family.name or chunk.order in plan.done or not plan.in_shard(chunk):
                continue
            kind = "production" if plan.production else "quick"
            item = ChunkItem.from_parent(self, name=f"{kind}[{chunk.name}]", family=family, chunk=chunk)
            if plan.production:
                item.add_marker(pytest.mark.production)
            yield item


class ChunkItem(pytest.Item):
    def __init__(self, *, family, chunk: Chunk, **kwargs):
        super().__init__(**kwargs)
        self.family = family
        self.chunk = chunk

    def runtest(self) -> None:
        from .pipeline import ChunkJob, run_chunk

        plan = self.config.stash[PLAN_KEY]
        if plan.production and plan.beyond_cutoff(self.chunk.order):
            pytest.skip("dataset target already reached before this chunk")
        gpu = _warp_ready()
        job = ChunkJob(
            family=self.family,
            chunk=self.chunk.name,
            indices=tuple(range(self.chunk.size)),
            devices=plan.devices,
            factory_seed=plan.factory_seed,
            build=BuildOptions(cuda_arch=plan.cuda_arch, with_ptx=plan.with_ptx),
            gpu=gpu,
            token_budget=plan.token_budget,
        )
        result = run_chunk(job)
        payload = {"chunk": self.chunk.as_list(), **result.as_dict()}
        self.user_properties.append((REPORT_KEY, payload))
        if not plan.production:
            failing = [r for r in result.rejects if r["reason"] in FAILING_REASONS]
            if failing:
                raise ChunkFailed(self.nodeid, failing)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, ChunkFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.family.name} {self.chunk.name}"


class ChunkFailed(Exception):
    def __init__(self, test_id: str, rejects: list[dict]):
        lines = [f"{len(rejects)} kernel(s) failed in {test_id}:"]
        for r in rejects:
            lines.append(f"  family={r['family']} seed={r['seed']} device={r['device']} chunk={r['chunk']} "
                         f"index={r['index']} reason={r['reason']}: {r['message']}")
        super().__init__("\n".join(lines))


class RunPlan:
    """What every process must agree on; built by the controller, shipped to workers as plain data."""

    def __init__(self, data: dict):
        self.data = data
        self.production: bool = data["production"]
        self.devices: tuple[str, ...] = tuple(data["devices"])
        self.factory_seed: int = data["factory_seed"]
        self.cuda_arch: int = data["cuda_arch"]
        self.with_ptx: bool = data["with_ptx"]
        self.token_budget: int = data["token_budget"]
        self.chunks = [Chunk.from_list(row) for row in data["chunks"]]
        self.done = {int(o) for o in data["done"]}
        self.stop_file = Path(data["stop_file"]) if data.get("stop_file") else None
        self.shard = tuple(data["shard"]) if data.get("shard") else None

    def in_shard(self, chunk: Chunk) -> bool:
        return self.shard is None or chunk.order % self.shard[1] == self.shard[0]

    def beyond_cutoff(self, order: int) -> bool:
        if self.stop_file is None or not self.stop_file.exists():
            return False
        try:
            cutoff = json.loads(self.stop_file.read_text())["cutoff"]
        except (OSError, ValueError, KeyError):
            return False
        return order > cutoff


PLAN_KEY = pytest.StashKey[RunPlan]()
