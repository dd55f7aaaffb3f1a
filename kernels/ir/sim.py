"""Building blocks shared by the simulation-shaped families (``particles``, ``springs``, ``sph``): vector
expression helpers, inputs drawn the way a simulation's state looks (particles on a jittered lattice, points kept
out of obstacles, edges between distinct particles), and the cleanliness check with facts the sampler guarantees.

The interval engine bounds a vector by the hull of its components, so it cannot see that a particle is never
at an obstacle's centre or that two particles of a jittered lattice are never closer than the lattice allows.
The samplers here guarantee such facts, and :func:`clean` gives them to the engine as *assumptions* on named
locals (the engine's interval of the local is met with the assumed one): a distance used as a divisor is then
known to be positive. Every assumption is a property of the sampled inputs, stated next to the sampler that
makes it true.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from harness.family import KernelSpec
from harness.verify import default_inputs
from kernels.ir import analysis, intervals
from kernels.ir import nodes as n
from kernels.ir.family import IRMeta
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, INT32, Vector

VEC3 = Vector(FLOAT32, 3)


@dataclass(frozen=True, slots=True)
class SimMeta(IRMeta):
    """:class:`IRMeta` plus how to draw the inputs that a uniform draw would make unphysical:
    ``draws`` maps an argument name to ``(kind, parameters)`` (see :func:`sample_inputs`)."""

    draws: tuple[tuple[str, str, tuple], ...] = field(default=())


def f32(value: float) -> n.Const:
    return n.Const(float(value), FLOAT32)


def i32(value: int) -> n.Const:
    return n.Const(int(value), INT32)


def vec3(*xs: n.Expr) -> n.Call:
    return n.Call("vec3", tuple(f32(x) if isinstance(x, (int, float)) else x for x in xs))


def comp(e: n.Expr, k: int) -> n.Component:
    return n.Component(e, k)


def call(op: str, *args: n.Expr) -> n.Call:
    return n.Call(op, tuple(args))


def var(name: str, ty=FLOAT32) -> n.Var:
    return n.Var(name, ty)


class _Assuming(intervals.Engine):
    """The interval engine with assumed intervals for some locals (met with what the engine computes)."""

    def __init__(self, *args, assume: Mapping[str, Interval], **kw) -> None:
        super().__init__(*args, **kw)
        self.assume = dict(assume)

    def stmt(self, s: n.Stmt, env):
        env = super().stmt(s, env)
        if isinstance(s, (n.Let, n.Assign)) and s.name in self.assume:
            met = env[s.name].meet(self.assume[s.name])
            env = {**env, s.name: met if met is not None else self.assume[s.name]}
        return env


def analyze(kernel: n.Kernel, inputs: Mapping[str, Interval], dim: tuple[int, ...],
            shapes: Mapping[str, tuple[int, ...]], assume: Mapping[str, Interval] | None = None) -> intervals.Facts:
    return _Assuming(kernel, inputs, dim, shapes, assume=assume or {}).run()


def clean(kernel: n.Kernel, inputs: Mapping[str, Interval], dim: tuple[int, ...],
          shapes: Mapping[str, tuple[int, ...]], assume: Mapping[str, Interval] | None = None) -> list[str]:
    """Why ``kernel`` is not clean (empty when it is): hygiene findings, guard violations, degenerate outputs,
    parameters that reach no output (like :func:`kernels.ir.gen.is_clean`, with real shapes and assumptions)."""
    facts = analyze(kernel, inputs, dim, shapes, assume)
    outputs = sorted({s.array for s in analysis.statements(kernel.body) if isinstance(s, (n.Store, n.Atomic))})
    reasons = [f"{k}: {v}" for k, v in analysis.hygiene(kernel).items() if v]
    reasons += facts.violations + facts.degenerate(outputs)
    unread = {p.name for p in kernel.params} - analysis.reaching(kernel)
    if unread:
        reasons.append(f"parameters reach no output: {sorted(unread)}")
    return reasons


# ---------------------------------------------------------------------------------------------------------
# Inputs


def lattice(rng: np.random.Generator, counts: tuple[int, int, int], spacing: float, jitter: float,
            origin: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Points on a ``counts`` lattice of ``spacing``, each moved by at most ``jitter`` per component and
    shuffled: two points are at least ``spacing - 2 * jitter`` apart."""
    grid = np.stack(np.meshgrid(*(np.arange(c) for c in counts), indexing="ij"), axis=-1).reshape(-1, 3)
    pts = np.asarray(origin) + grid * spacing + rng.uniform(-jitter, jitter, grid.shape)
    return pts[rng.permutation(len(pts))].astype(np.float32)


def away(rng: np.random.Generator, count: int, lo: float, hi: float, centres: tuple, radius: float) -> np.ndarray:
    """``count`` points uniform in ``[lo, hi]^3`` at least ``radius`` from every centre (redrawn until so)."""
    pts = rng.uniform(lo, hi, (count, 3))
    for _ in range(200):
        bad = np.zeros(count, dtype=bool)
        for c in centres:
            bad |= np.linalg.norm(pts - np.asarray(c), axis=1) < radius
        if not bad.any():
            break
        pts[bad] = rng.uniform(lo, hi, (int(bad.sum()), 3))
    return pts.astype(np.float32)


def edge_pairs(rng: np.random.Generator, particles: int, edges: int) -> np.ndarray:
    """``edges`` distinct pairs ``(a, b)`` of distinct particles, every particle in at least one pair when there
    are enough edges (a chain through a random order, then random extra pairs)."""
    order = rng.permutation(particles)
    chain = np.sort(np.stack([order[:-1], order[1:]], axis=1)[:min(particles - 1, edges)], axis=1)
    a, b = np.triu_indices(particles, 1)
    taken = np.zeros((particles, particles), dtype=bool)
    taken[chain[:, 0], chain[:, 1]] = True
    free = np.flatnonzero(~taken[a, b])
    extra = rng.choice(free, edges - len(chain), replace=False)
    pairs = np.concatenate([chain, np.stack([a[extra], b[extra]], axis=1)])
    out = pairs.astype(np.int32)[rng.permutation(edges)]
    flip = rng.random(edges) < 0.5
    out[flip] = out[flip][:, ::-1]
    return out


def sample_inputs(spec: KernelSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Uniform draws (:func:`harness.verify.default_inputs`), then the family's special draws: ``lattice``
    (counts, spacing, jitter, origin), ``away`` (lo, hi, centres, radius), ``edges`` (particles, layout) with
    layout ``pairs`` (an (E, 2) array), ``flat`` (2E), ``first``/``second`` (one end each, sharing a draw)."""
    values = default_inputs(spec, rng)
    meta: SimMeta = spec.meta
    drawn_edges: dict[int, np.ndarray] = {}
    for name, kind, params in meta.draws:
        arg = next(a for a in spec.args if a.name == name)
        if kind == "lattice":
            values[name] = lattice(rng, *params)
        elif kind == "away":
            values[name] = away(rng, arg.shape[0], *params)
        elif kind == "near":            # another input moved by at most ``radius`` per component
            source, radius = params
            base = np.asarray(values[source], dtype=np.float64)
            values[name] = (base + rng.uniform(-radius, radius, base.shape)).astype(np.float32)
        elif kind == "edges":
            particles, layout, count = params
            pairs = drawn_edges.setdefault(count, edge_pairs(rng, particles, count))
            values[name] = {"pairs": pairs, "flat": pairs.reshape(-1), "first": pairs[:, 0].copy(),
                            "second": pairs[:, 1].copy()}[layout]
        else:
            raise KeyError(f"unknown draw kind {kind!r} for {name!r}")
    return values
