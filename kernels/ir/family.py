"""Adapter from an IR kernel to the harness: a :class:`harness.family.Program` whose ``meta`` is the IR, and a
reference that runs the interpreter, so that a family is its vocabulary, its generator and its tolerances.

A family written against the IR::

    def draw(rng):
        kernel, ranges = random_kernel(rng, VOCAB, size=64)
        return program(kernel, ranges, dim=(64,))

    FAMILY = ir_family("mine", __doc__, draw, covers=("...",), version=1)
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, replace
from functools import partial
from typing import Callable, Mapping

import numpy as np

from harness.errors import KernelRejected
from harness.family import PLACEHOLDER, Arg, Family, InputSampler, KernelSpec, Program, Reference, Tolerance
from harness.verify import screen
from kernels.ir import interp, printer
from kernels.ir import nodes as n
from kernels.ir.analysis import expressions, op_names, reaching, statements
from kernels.ir.numeric import Interval
from kernels.ir.ops import OPS
from kernels.ir.types import BOOL, FLOAT16, FLOAT32, FLOAT64, Array, Scalar, dtype_name, scalar_of

#: verification tolerance of outputs of each component type; integers (and bools) are exact
TOLERANCES = {FLOAT16: Tolerance(2e-2, 2e-3), FLOAT32: Tolerance(1e-4, 1e-5), FLOAT64: Tolerance(1e-9, 1e-11)}
EXACT = Tolerance(0.0, 0.0)


@dataclass(frozen=True, slots=True)
class IRMeta:
    """What the reference needs: the kernel and its launch shape."""

    kernel: n.Kernel
    dim: tuple[int, ...]


def _role(kernel: n.Kernel, p: n.Param) -> str:
    if not isinstance(p.type, Array):
        return "scalar"
    written = {s.array for s in statements(kernel.body) if isinstance(s, (n.Store, n.Atomic))}
    if p.name not in written:
        return "in"
    loaded = reaching(kernel) & {p.name}
    return "inout" if loaded and any(isinstance(x, n.Load) and x.array == p.name
                                     for x in expressions(kernel.body)) else "out"


def program(kernel: n.Kernel, ranges: Mapping[str, Interval], dim: tuple[int, ...], features: dict | None = None,
            differentiable: bool | None = None, shapes: Mapping[str, tuple[int, ...]] | None = None,
            roles: Mapping[str, str] | None = None) -> Program:
    """The harness program of ``kernel`` (printed with the placeholder name), one ``Arg`` per parameter with
    shape ``dim`` for arrays (or its entry in ``shapes``), the role the kernel gives it (or its entry in
    ``roles``: ``inout`` for an array whose atomics start from sampled contents) and the sampling range from
    ``ranges``."""
    shapes, roles = shapes or {}, roles or {}
    kernel = replace(kernel, name=PLACEHOLDER)
    args = []
    for p in kernel.params:
        role = roles.get(p.name) or _role(kernel, p)
        iv = ranges.get(p.name, Interval(-2.0, 2.0))
        dtype = p.type.dtype if isinstance(p.type, Array) else p.type
        shape = tuple(shapes.get(p.name, dim)) if isinstance(p.type, Array) else ()
        name = "int32" if dtype == BOOL else dtype_name(dtype)      # the harness has no bool dtype: 0/1
        args.append(Arg(p.name, name, role, shape, iv.lo, iv.hi))
    if differentiable is None:
        differentiable = all(scalar_of(p.type.dtype).is_float for p in kernel.params
                             if isinstance(p.type, Array)) and adjoints_right(kernel)
    return Program(printer.kernel_source(kernel), tuple(args), tuple(dim), IRMeta(kernel, tuple(dim)),
                   dict(features or {}), differentiable=differentiable)


def adjoints_right(kernel: n.Kernel) -> bool:
    """Whether Warp's adjoint is right for every operation: arguments the table's ``adjoint_args`` leave out
    (``frac``'s, a float ``%``'s divisor) are constants."""
    body = kernel.body + tuple(s for f in kernel.funcs for s in f.body)
    for x in expressions(body):
        row = OPS.get(x.op) if isinstance(x, n.Call) else None
        if row is not None and row.adjoint_args is not None and scalar_of(x.type).is_float and any(
                not isinstance(a, n.Const) for k, a in enumerate(x.args) if k not in row.adjoint_args):
            return False
    return True


def reference(spec: KernelSpec, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The interpreter's outputs, float32 kept in float64 (the verifier's conditioning and gradient checks
    perturb inputs by less than a float32 ulp and need a smooth reference).

    Answers are kept for the last few (kernel, inputs) pairs: the screen of a seeded family asks the same
    questions the verifier asks next (same kernel object, same inputs), and gets the same answer either way."""
    meta: IRMeta = spec.meta
    digest = hashlib.sha256()
    for name in sorted(inputs):
        value = np.ascontiguousarray(inputs[name])
        digest.update(f"{name}:{value.dtype.str}:{value.shape}".encode())
        digest.update(value.tobytes())
    key = (id(meta.kernel), meta.dim, digest.digest())
    hit = _REFERENCE_CACHE.get(key)
    if hit is not None and hit[0] is meta.kernel:
        _REFERENCE_CACHE.move_to_end(key)
        return {k: v.copy() for k, v in hit[1].items()}
    result = interp.run(meta.kernel, meta.dim, inputs, exact=False)
    out = {a.name: result[a.name] for a in spec.args if a.is_output}
    _REFERENCE_CACHE[key] = (meta.kernel, {k: v.copy() for k, v in out.items()})
    if len(_REFERENCE_CACHE) > 64:
        _REFERENCE_CACHE.popitem(last=False)
    return out


_REFERENCE_CACHE: OrderedDict = OrderedDict()


def prepare(spec: KernelSpec, inputs: Mapping[str, np.ndarray], device: str, namespace: dict) -> dict:
    """Launch values the harness cannot make: ``bool`` parameters (sampled as int32 0/1) as Python bools."""
    kernel: n.Kernel = spec.meta.kernel
    return {p.name: bool(int(inputs[p.name])) for p in kernel.params if p.type == BOOL}


def tolerance(spec: KernelSpec) -> Tolerance:
    """The loosest tolerance over the kernel's output types (exact for integer outputs)."""
    kernel: n.Kernel = spec.meta.kernel
    written = {s.array for s in statements(kernel.body) if isinstance(s, (n.Store, n.Atomic))}
    types = [scalar_of(p.type.dtype) for p in kernel.params if p.name in written]
    return max((TOLERANCES.get(t, EXACT) for t in types), key=lambda t: (t.rtol, t.atol), default=EXACT)


def features(kernel: n.Kernel) -> dict:
    """Descriptive tags for a record: operations used, statement kinds, parameter counts and types."""
    kinds: dict[str, int] = {}
    for s in statements(kernel.body):
        kinds[type(s).__name__.lower()] = kinds.get(type(s).__name__.lower(), 0) + 1
    types = sorted({str(scalar_of(p.type.dtype if isinstance(p.type, Array) else p.type)) for p in kernel.params})
    return {"dtype": types[0] if len(types) == 1 else types, "ops": op_names(kernel), "statements": kinds,
            "inputs": sum(_role(kernel, p) == "in" for p in kernel.params),
            "outputs": sum(_role(kernel, p) in ("out", "inout") for p in kernel.params),
            "scalars": sum(isinstance(p.type, Scalar) for p in kernel.params)}


def healthy(prog: Program, seed: int, tol: Callable[[KernelSpec], Tolerance] = tolerance,
            sample_inputs: InputSampler | None = None, ref: Reference = reference,
            run: Callable[[KernelSpec, Mapping[str, np.ndarray], interp.Interpreter], Mapping] | None = None) -> bool:
    """Whether the verifier's own checks (:func:`harness.verify.screen`) pass with the interpreter rounding as
    Warp does standing in for the compiled kernel: finite, well-conditioned, not constant, no copy of an input,
    no dead inputs; and whether the inputs exercise every branch, loop body and helper (a block no lane enters
    is code the verification never ran: dead to a reader, and a mutant of it would survive the judge).

    A family whose interpreter needs more than the inputs (a structure bound to an id) gives its reference
    ``ref`` and ``run(spec, inputs, interpreter)``, which runs that interpreter the same way."""
    family = Family("screen", "", generate=lambda rng: prog, reference=ref, tolerance=tol,
                    sample_inputs=sample_inputs)
    spec = KernelSpec("screen", 0, seed, PLACEHOLDER, prog)
    meta: IRMeta = prog.meta
    it = interp.Interpreter(meta.kernel)
    try:
        screen(family, spec, lambda inputs: run(spec, inputs, it) if run else it.run(meta.dim, inputs))
    except KernelRejected:
        return False
    return not interp.unreached(meta.kernel, it.reached)


def screened(rng: np.random.Generator, draw: Callable[[np.random.Generator], Program], tries: int = 6,
             tol: Callable[[KernelSpec], Tolerance] = tolerance,
             sample_inputs: InputSampler | None = None, seed: int | None = None) -> Program:
    """``draw(rng)`` until its program is :func:`healthy`, at most ``tries`` times (the last one otherwise).

    With the kernel's ``seed`` (``Family.seeded``) the screen draws the very inputs the verifier will draw for
    it, so the checks and the branch coverage are those of production, and :func:`reference` answers the
    verifier from its cache."""
    prog = draw(rng)
    for _ in range(tries - 1):
        if healthy(prog, int(rng.integers(2**62)) if seed is None else seed, tol, sample_inputs):
            break
        prog = draw(rng)
    if not prog.differentiable and isinstance(prog.meta, IRMeta) and rng.random() < NO_BACKWARD_SHARE:
        prog = without_backward(prog)
    return prog


#: share of non-differentiable programs declared ``@wp.kernel(enable_backward=False)``, as simulation code
#: declares kernels nobody differentiates (80 of Warp's 449 non-test kernels do): Warp then generates no
#: backward entry, and the record's ``ir.backward`` is null
NO_BACKWARD_SHARE = 0.5


def without_backward(prog: Program) -> Program:
    """``prog`` with its kernel declared ``enable_backward=False`` (only for a program that is not differentiable)."""
    if prog.differentiable:
        raise ValueError("a differentiable program keeps its backward")
    meta: IRMeta = prog.meta
    if any(key == "enable_backward" for key, _ in meta.kernel.options):      # the family chose already
        return prog
    kernel = replace(meta.kernel, options=(*meta.kernel.options, ("enable_backward", False)))
    return replace(prog, source=printer.kernel_source(kernel), meta=replace(meta, kernel=kernel),
                   features={**prog.features, "enable_backward": False})


def ir_family(name: str, doc: str, draw: Callable[[np.random.Generator], Program], covers: tuple[str, ...],
              version: int, tol: Callable[[KernelSpec], Tolerance] = tolerance,
              sample_inputs: InputSampler | None = None, weight: float = 1.0,
              same_programs_as: tuple[int, ...] = ()) -> Family:
    """A family written against the IR: programs from ``draw``, :func:`screened`; the interpreter as reference;
    the description is the first line of ``doc``."""
    return Family(name=name, description=doc.strip().splitlines()[0],
                  generate=partial(screened, draw=draw, tol=tol, sample_inputs=sample_inputs), reference=reference,
                  tolerance=tol, version=version, weight=weight, sample_inputs=sample_inputs, prepare=prepare,
                  covers=covers, seeded=True, same_programs_as=same_programs_as)
