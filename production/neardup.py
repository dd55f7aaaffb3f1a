"""Near-duplicates: programs that are not structurally identical but share most of their structure.

Structural dedup (``harness.record.structural_hash``) removes programs equal up to names, literals and
comments. This measures what is left: the Jaccard similarity of the sets of token 5-grams of each program's
structural text. Every pair at or above the lowest reported threshold is found exactly, by an all-pairs
similarity join with prefix filtering (Bayardo et al. 2007; Xiao et al.'s PPJoin): with shingles ordered from
rarest to commonest, two sets with Jaccard >= t must share one of the first ``|A| - ceil(t|A|) + 1`` shingles of
each, so only pairs sharing a prefix shingle (and of compatible sizes) are compared, and each of those exactly.
Deterministic: shingles are CRC-32 of their text, never ``hash()``.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter, defaultdict

import numpy as np

from harness.record import structural_text

SHINGLE = 5
THRESHOLDS = (0.8, 0.9)


def shingles(source: str) -> np.ndarray:
    tokens = structural_text(source).split()
    grams = {" ".join(tokens[i:i + SHINGLE]) for i in range(max(1, len(tokens) - SHINGLE + 1))}
    return np.fromiter((zlib.crc32(g.encode("utf-8")) for g in grams), dtype=np.uint64, count=len(grams))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (a.size + b.size - inter) if a.size + b.size else 1.0


def nearest_neighbours(sources: list[str], threshold: float = min(THRESHOLDS)) -> list[tuple[float, int]]:
    """For each program, (its largest Jaccard similarity to another program, that program's index), exact for
    every program that has a neighbour at ``threshold`` or above; ``(0.0, -1)`` for the others."""
    sets = [np.unique(shingles(s)) for s in sources]
    frequency = Counter(int(x) for s in sets for x in s)
    ordered = [sorted((int(x) for x in s), key=lambda x: (frequency[x], x)) for s in sets]
    index: dict[int, list[int]] = defaultdict(list)       # prefix shingle -> programs (smaller first)
    best = [(0.0, -1)] * len(sources)
    for i in sorted(range(len(sets)), key=lambda k: (len(ordered[k]), k)):
        size = len(ordered[i])
        prefix = ordered[i][:size - math.ceil(threshold * size) + 1]
        candidates = {j for x in prefix for j in index[x] if len(ordered[j]) >= threshold * size}
        for j in sorted(candidates):
            sim = jaccard(sets[i], sets[j])
            if sim >= threshold:
                if sim > best[i][0]:
                    best[i] = (sim, j)
                if sim > best[j][0]:
                    best[j] = (sim, i)
        for x in prefix:
            index[x].append(i)
    return best


def near_duplicate_numbers(rows: list[dict]) -> dict:
    """How many records have a near neighbour at each threshold, overall and per family, and the closest pair."""
    best = nearest_neighbours([r["python_source"] for r in rows])
    out = {"records": len(rows), "shingle": SHINGLE, "method": "exact all-pairs join (prefix filtering)"}
    for t in THRESHOLDS:
        near = [i for i, (sim, _) in enumerate(best) if sim >= t]
        out[f"with_neighbour_ge_{t}"] = len(near)
        out[f"per_family_ge_{t}"] = dict(sorted(Counter(rows[i]["family"] for i in near).items()))
    sims = np.array([sim for sim, _ in best]) if best else np.zeros(0)
    if best:
        i = int(np.argmax(sims))
        j = best[i][1]
        out["closest_pair"] = {"similarity": float(sims[i]), "a": rows[i]["kernel_name"],
                               "b": rows[j]["kernel_name"] if j >= 0 else None}
    return out
