"""Which chunks a run makes, in one canonical order shared by the controller and every worker.

Production interleaves families by weight (smooth weighted round-robin), so the dataset's first N chunks are
a balanced prefix. A chunk is named per family (``c00012``) so its kernels' seeds do not change when a
family is added. The controller computes the plan once and ships it to workers in ``workerinput``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .family import Family

QUICK_KERNELS = 4              # kernels per family in the default (non-production) run
DEFAULT_BYTES_PER_KERNEL = 6000
PROVISION = 2.5                # collect this many times the estimated chunks; the excess is skipped at run time


@dataclass(frozen=True, slots=True)
class Chunk:
    order: int        # position in the canonical order
    family: str
    name: str         # "c00012" (production) or "q003" (quick)
    size: int         # kernels in the chunk

    def as_list(self) -> list:
        return [self.order, self.family, self.name, self.size]

    @classmethod
    def from_list(cls, row) -> "Chunk":
        return cls(int(row[0]), str(row[1]), str(row[2]), int(row[3]))


def quick_plan(families: dict[str, Family], kernels_per_family: int = QUICK_KERNELS) -> list[Chunk]:
    chunks = []
    for family in sorted(families):
        for i in range(kernels_per_family):
            chunks.append(Chunk(len(chunks), family, f"q{i:03d}", 1))
    return chunks


def production_plan(families: dict[str, Family], target_bytes: int,
                    bytes_per_kernel: dict[str, float] | None = None) -> list[Chunk]:
    """Enough chunks to reach ``target_bytes`` per dataset, with a margin, interleaved by weight."""
    measured = bytes_per_kernel or {}
    total_weight = sum(f.weight for f in families.values())
    wanted: dict[str, int] = {}
    for name, family in sorted(families.items()):
        per_kernel = measured.get(name) or getattr(family, "bytes_hint", None) or DEFAULT_BYTES_PER_KERNEL
        share = target_bytes * family.weight / total_weight
        kernels = share / per_kernel
        wanted[name] = max(1, math.ceil(kernels * PROVISION / family.chunk_size))
    # smooth weighted round robin over the families, each limited to its chunk count
    current = {name: 0.0 for name in wanted}
    made = {name: 0 for name in wanted}
    chunks: list[Chunk] = []
    total = sum(wanted.values())
    while len(chunks) < total:
        live = [n for n in sorted(wanted) if made[n] < wanted[n]]
        live_weight = sum(families[n].weight for n in live)
        for n in live:
            current[n] += families[n].weight
        pick = max(live, key=lambda n: (current[n], -sorted(wanted).index(n)))
        current[pick] -= live_weight
        chunks.append(Chunk(len(chunks), pick, f"c{made[pick]:05d}", families[pick].chunk_size))
        made[pick] += 1
    return chunks
