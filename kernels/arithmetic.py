"""arithmetic: random expression trees and statement sequences over scalars and array elements.

Operators + - * / (and // % for integers), min/max, abs, negation, selects (``wp.where`` and ``a if c else b``)
in float32, float64 or int32 (C semantics), with 1-3 input arrays, optional scalar parameters, 0-4 local
bindings and one or two outputs.
"""

from __future__ import annotations

import numpy as np

from harness.family import Arg, Family, KernelSpec, Program
from kernels import _expr as E
from kernels._common import ARRAY_NAMES, LOCAL_NAMES, OUT_NAMES, SCALAR_NAMES, kernel_source, pick, type_tolerance

N = 64


def generate(rng: np.random.Generator) -> Program:
    ty = E.SCALARS[pick(rng, ("float32", "float32", "float64", "int32"))]
    n_in = int(rng.integers(1, 4))
    names = pick(rng, ARRAY_NAMES, n_in)
    lo, hi = (-20, 20) if ty.is_int else pick(rng, ((-2.0, 2.0), (-1.0, 3.0), (0.5, 4.0)))
    args = [Arg(n, ty.name, "in", (N,), lo, hi) for n in names]
    inline = rng.random() < 0.4           # a[i] inside expressions, or loaded into locals first
    body: list[str] = []
    leaves: dict[str, E.Interval] = {}
    for n in names:
        if inline:
            leaves[f"{n}[i]"] = E.Interval(lo, hi)
        else:
            local = f"{n}_v" if rng.random() < 0.5 else f"x{n}"
            body.append(f"{local} = {n}[i]")
            leaves[local] = E.Interval(lo, hi)
    if rng.random() < 0.35:
        sname = pick(rng, SCALAR_NAMES)
        s_lo, s_hi = (1, 5) if ty.is_int else (0.5, 2.0)
        args.append(Arg(sname, ty.name, "scalar", (), s_lo, s_hi))
        leaves[sname] = E.Interval(s_lo, s_hi)
    binary = ("add", "sub", "mul", "div", "min", "max") + (("mod", "floordiv") if ty.is_int else ())
    gen = E.ExprGen(rng, ty, dict(leaves), binary=binary)
    statements = []
    for k in range(int(rng.integers(0, 5))):
        name = f"{pick(rng, LOCAL_NAMES)}{k}"
        node = gen.expr(int(rng.integers(1, 4)))
        if node.op in ("var", "const"):
            node = gen.apply_binary(pick(rng, binary), node, gen.expr(1))
        statements.append((name, node))
        body.append(f"{name} = {E.emit(node, ty)}")
        gen.leaves[name] = node.iv
    outs = pick(rng, OUT_NAMES, int(rng.integers(1, 3)))
    out_nodes = []
    for o in outs:
        node = gen.expr(int(rng.integers(2, 5)))
        if not E.uses(node) or node.op == "var":
            node = gen.apply_binary(pick(rng, binary), node, gen.expr(2))
        if not E.uses(node):
            node = gen.apply_binary("add", node, gen.var_leaf())
        out_nodes.append((o, node))
    # every input and every local must reach an output: fold the ones that do not into the first output
    reach = _reaching(statements, out_nodes)
    missing = [v for v in gen.leaves if v not in reach]
    if missing:
        o, node = out_nodes[0]
        for v in missing:
            node = gen.apply_binary(pick(rng, ("add", "sub", "max", "mul")), node, E.var(v, gen.leaves[v]))
        out_nodes[0] = (o, node)
    for o, node in out_nodes:
        body.append(f"{o}[i] = {E.emit(node, ty)}")
        args.append(Arg(o, ty.name, "out", (N,)))
    ops = set()
    for _, node in statements + out_nodes:
        ops |= E.ops_of(node)
    meta = {"ty": ty.name, "inline": inline, "names": names, "statements": statements, "outputs": out_nodes,
            "scalars": [a.name for a in args if a.role == "scalar"]}
    features = {"dtype": ty.name, "ops": sorted(ops), "statements": len(statements), "outputs": len(outs),
                "inputs": n_in}
    return Program(kernel_source(args, body), tuple(args), (N,), meta, features,
                   differentiable=not ty.is_int)


def _reaching(statements, out_nodes) -> set[str]:
    """Variables that influence some output (through the chain of local bindings)."""
    roots: set[str] = set()
    for _, node in out_nodes:
        roots |= E.uses(node)
    return E.reachable({name: E.uses(node) for name, node in statements}, roots)


def reference(spec: KernelSpec, inputs) -> dict[str, np.ndarray]:
    meta = spec.meta
    ty = E.SCALARS[meta["ty"]]
    env: dict[str, np.ndarray] = {}
    for n in meta["names"]:
        value = inputs[n].astype(ty.np_ref)
        env[f"{n}[i]"] = value
        env[f"{n}_v"] = value
        env[f"x{n}"] = value
    for s in meta["scalars"]:
        env[s] = np.asarray(inputs[s], dtype=ty.np_ref)
    for name, node in meta["statements"]:
        env[name] = E.evaluate(node, env, ty)
    return {o: np.broadcast_to(E.evaluate(node, env, ty), (N,)).copy() for o, node in meta["outputs"]}


FAMILY = Family(
    name="arithmetic",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=reference,
    tolerance=type_tolerance,
    weight=1.0,
    covers=("arithmetic", "expression trees", "scalar parameters", "int32 C semantics", "float64"),
)
