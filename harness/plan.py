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


def interleave(families: dict[str, Family]):
    """The infinite canonical chunk sequence: smooth weighted round-robin over the families by weight.

    Every production plan is a prefix of this sequence, so the canonical order of a chunk never depends on
    how many chunks a run planned (a rerun that plans more, or a shard of the run, agrees with the rest).
    """
    names = sorted(families)
    total = sum(families[n].weight for n in names)
    current = {n: 0.0 for n in names}
    made = {n: 0 for n in names}
    order = 0
    while True:
        for n in names:
            current[n] += families[n].weight
        pick = max(names, key=lambda n: (current[n], -names.index(n)))
        current[pick] -= total
        yield Chunk(order, pick, f"c{made[pick]:05d}", families[pick].chunk_size)
        made[pick] += 1
        order += 1


def production_plan(families: dict[str, Family], target_bytes: int,
                    bytes_per_kernel: dict[str, float] | None = None) -> list[Chunk]:
    """Enough chunks of the canonical sequence to reach ``target_bytes`` per dataset, with a margin."""
    measured = bytes_per_kernel or {}
    total_weight = sum(f.weight for f in families.values())
    per_chunk = 0.0          # expected record bytes of an average chunk of the sequence
    for name, family in families.items():
        per_kernel = measured.get(name) or DEFAULT_BYTES_PER_KERNEL
        per_chunk += family.weight / total_weight * per_kernel * family.chunk_size
    count = max(len(families), math.ceil(PROVISION * target_bytes / per_chunk))
    sequence = interleave(families)
    return [next(sequence) for _ in range(count)]


def covering_prefix(families: dict[str, Family], present: set[tuple[str, str]], at_least: int = 0) -> list[Chunk]:
    """The shortest prefix of the canonical sequence that has ``at_least`` chunks and contains every
    ``(family, chunk name)`` in ``present`` (chunks written by an earlier run, another shard, or another plan)."""
    remaining = {p for p in present if p[0] in families}
    prefix: list[Chunk] = []
    for chunk in interleave(families):
        if len(prefix) >= at_least and not remaining:
            break
        prefix.append(chunk)
        remaining.discard((chunk.family, chunk.name))
    return prefix
