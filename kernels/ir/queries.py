"""NumPy semantics of Warp's block-cooperative queries (:class:`kernels.ir.nodes.TileQuery`), read in Warp 1.19's
``warp/native/tile_bvh.h``, ``tile_mesh.h``, ``intersect.h`` and measured on the cpu build:

* ``tile_bvh_query_aabb(id, lo, hi)`` reports every box whose ``[lower, upper]`` overlaps ``[lo, hi]``, closed on
  both sides (``intersect_aabb_aabb``);
* ``tile_bvh_query_ray(id, start, dir)`` reports every box the slab test accepts with ``rcp_dir = 1 / dir``:
  ``lmax >= 0 and lmax >= lmin`` (``intersect_ray_aabb``; one-sided, unbounded);
* ``tile_mesh_query_aabb(id, lo, hi)`` reports every triangle whose bounding box overlaps ``[lo, hi]``.

Each reported item reaches exactly one thread of the block once. :func:`members` answers all (query, item) pairs
at once; :func:`margins` says how far each pair is from the decision (a family's sampler keeps it away from zero,
so that no float32 rounding of either side can flip a membership).
"""

from __future__ import annotations

import numpy as np


def boxes(kind: str, first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corners (items, 3) of the items a query of ``kind`` tests: the boxes themselves
    (``first``, ``second`` = lowers, uppers), or the bounding boxes of a mesh's triangles (points, indices)."""
    if kind == "mesh_aabb":
        tri = np.asarray(first, dtype=np.float64)[np.asarray(second, dtype=np.int64).reshape(-1, 3)]
        return tri.min(axis=1), tri.max(axis=1)
    return np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)


def _slab(start: np.ndarray, direction: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    rcp = 1.0 / direction[:, None]
    l1, l2 = (lo[None] - start[:, None]) * rcp, (hi[None] - start[:, None]) * rcp
    return np.minimum(l1, l2).max(axis=-1), np.maximum(l1, l2).min(axis=-1)


def margins(kind: str, a: np.ndarray, b: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Signed distance of each (query, item) pair from the decision, (queries, items): >= 0 reported, < 0 not.
    Boxes: the smallest per-axis overlap ``min(hi - lower, upper - lo)`` (a length); rays: the smaller of ``lmax``
    and ``lmax - lmin`` (a ray parameter, times ``|dir|`` to make it a length)."""
    lo, hi = boxes(kind, first, second)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if kind == "ray":
        with np.errstate(divide="ignore", invalid="ignore"):
            lmin, lmax = _slab(a, b, lo, hi)
        return np.minimum(lmax, lmax - lmin) * np.linalg.norm(b, axis=-1)[:, None]
    return np.minimum(b[:, None] - lo[None], hi[None] - a[:, None]).min(axis=-1)


def members(kind: str, a: np.ndarray, b: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Whether each query (``a``, ``b``: lo/hi or start/dir per lane) reports each item: (lanes, items) bool."""
    return margins(kind, a, b, first, second) >= 0
