"""Near-duplicates: programs that are not structurally identical but share most of their structure.

Structural dedup (``harness.record.structural_hash``) removes programs equal up to names, literals and
comments. This measures what is left: the Jaccard similarity of the sets of token 5-grams of each program's
structural text, found with MinHash and banded locality-sensitive hashing (64 hashes in 16 bands of 4), then
computed exactly for every candidate pair. Deterministic: shingles are CRC-32 of their text, never ``hash()``.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict

import numpy as np

from harness.record import structural_text

SHINGLE = 5
HASHES = 64
BANDS = 16
PRIME = (1 << 61) - 1
MAX_BUCKET = 200            # a bucket this full is one big family resemblance: compare a bounded sample of it
THRESHOLDS = (0.8, 0.9)

_rng = np.random.Generator(np.random.PCG64(20261204))
_A = _rng.integers(1, 1 << 31, size=HASHES, dtype=np.uint64)
_B = _rng.integers(0, 1 << 31, size=HASHES, dtype=np.uint64)


def shingles(source: str) -> np.ndarray:
    tokens = structural_text(source).split()
    grams = {" ".join(tokens[i:i + SHINGLE]) for i in range(max(1, len(tokens) - SHINGLE + 1))}
    return np.fromiter((zlib.crc32(g.encode("utf-8")) for g in grams), dtype=np.uint64, count=len(grams))


def signature(sh: np.ndarray) -> np.ndarray:
    # a < 2^31 and x < 2^32, so a*x + b stays below 2^64: exact in uint64
    return ((np.outer(sh, _A) + _B) % PRIME).min(axis=0)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (a.size + b.size - inter) if a.size + b.size else 1.0


def nearest_neighbours(sources: list[str]) -> list[tuple[float, int]]:
    """For each program, (the largest Jaccard similarity to another program, that program's index or -1).

    Only LSH candidates are compared: a pair at similarity 0.8 is a candidate with probability 0.9998, at 0.5
    with 0.64, so the values are exact above about 0.8 and lower bounds below."""
    sets = [np.unique(shingles(s)) for s in sources]
    sigs = np.stack([signature(s) for s in sets]) if sets else np.zeros((0, HASHES), dtype=np.uint64)
    rows = HASHES // BANDS
    candidates: set[tuple[int, int]] = set()
    for band in range(BANDS):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        for i, sig in enumerate(sigs):
            buckets[sig[band * rows:(band + 1) * rows].tobytes()].append(i)
        for members in buckets.values():
            members = members[:MAX_BUCKET]
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    candidates.add((members[x], members[y]))
    best = [(0.0, -1)] * len(sources)
    for i, j in sorted(candidates):
        sim = jaccard(sets[i], sets[j])
        if sim > best[i][0]:
            best[i] = (sim, j)
        if sim > best[j][0]:
            best[j] = (sim, i)
    return best


def near_duplicate_numbers(rows: list[dict]) -> dict:
    """How many records have a near neighbour at each threshold, overall and per family, and the closest pair."""
    best = nearest_neighbours([r["python_source"] for r in rows])
    out = {"records": len(rows), "shingle": SHINGLE, "hashes": HASHES, "bands": BANDS}
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
