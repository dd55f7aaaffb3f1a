"""Warp value types the factory knows: how each is spelled in kernel source and held in NumPy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import warp as wp


@dataclass(frozen=True, slots=True)
class DType:
    name: str             # canonical name used in specs and records
    source: str           # how kernel source spells it
    warp: object          # the Warp type
    numpy: type           # NumPy scalar type of one component
    shape: tuple = ()     # component shape of one element (vectors, matrices)

    @property
    def is_float(self) -> bool:
        return np.issubdtype(self.numpy, np.floating)

    @property
    def is_int(self) -> bool:
        return np.issubdtype(self.numpy, np.integer)

    @property
    def eps(self) -> float:
        return float(np.finfo(self.numpy).eps) if self.is_float else 0.0


def _table() -> dict[str, DType]:
    rows = [
        DType("float16", "wp.float16", wp.float16, np.float16),
        DType("float32", "wp.float32", wp.float32, np.float32),
        DType("float64", "wp.float64", wp.float64, np.float64),
        DType("int32", "wp.int32", wp.int32, np.int32),
        DType("int64", "wp.int64", wp.int64, np.int64),
        DType("uint32", "wp.uint32", wp.uint32, np.uint32),
        DType("uint64", "wp.uint64", wp.uint64, np.uint64),
        DType("uint8", "wp.uint8", wp.uint8, np.uint8),
        DType("vec2f", "wp.vec2", wp.vec2, np.float32, (2,)),
        DType("vec3f", "wp.vec3", wp.vec3, np.float32, (3,)),
        DType("vec4f", "wp.vec4", wp.vec4, np.float32, (4,)),
        DType("vec3d", "wp.vec3d", wp.vec3d, np.float64, (3,)),
        DType("vec2d", "wp.vec2d", wp.vec2d, np.float64, (2,)),
        DType("vec3h", "wp.vec3h", wp.vec3h, np.float16, (3,)),
        DType("vec2h", "wp.vec2h", wp.vec2h, np.float16, (2,)),
        DType("vec4h", "wp.vec4h", wp.vec4h, np.float16, (4,)),
        DType("vec2i", "wp.vec2i", wp.vec2i, np.int32, (2,)),
        DType("vec3i", "wp.vec3i", wp.vec3i, np.int32, (3,)),
        DType("vec4i", "wp.vec4i", wp.vec4i, np.int32, (4,)),
        DType("mat22f", "wp.mat22", wp.mat22, np.float32, (2, 2)),
        DType("mat33f", "wp.mat33", wp.mat33, np.float32, (3, 3)),
        DType("mat44f", "wp.mat44", wp.mat44, np.float32, (4, 4)),
        DType("quatf", "wp.quat", wp.quat, np.float32, (4,)),
        DType("transformf", "wp.transform", wp.transform, np.float32, (7,)),
    ]
    return {r.name: r for r in rows}


DTYPES: dict[str, DType] = _table()


def dtype(name: str) -> DType:
    try:
        return DTYPES[name]
    except KeyError:
        raise KeyError(f"unknown dtype {name!r}; known: {sorted(DTYPES)}") from None
