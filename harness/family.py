"""What a kernel family provides, and the values that flow from a seed to a record.

A family module (``kernels/<name>.py``) defines ``FAMILY = Family(...)``: a generator from a seeded RNG to a
:class:`Program`, a NumPy reference, and tolerances. It does no I/O and knows nothing of pytest.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal, Mapping

import numpy as np

from .dtypes import dtype as lookup_dtype

#: ``in``/``out``/``inout`` arrays and ``scalar`` values are kernel parameters, in order; ``aux`` values are
#: sampled and given to the reference and to ``Family.prepare`` but are not parameters (e.g. mesh vertices).
Role = Literal["in", "out", "inout", "scalar", "aux"]

#: The provisional kernel name a generator writes; the harness replaces it with a content-addressed name.
PLACEHOLDER = "wkf_kernel"
#: hex digits of the source's sha256 in a kernel's name (``math_cf2633``): short enough to read, long enough that
#: two programs of one chunk rarely share a name (when they do, :func:`harness.pipeline.name_rounds` builds them
#: apart)
NAME_HASH_DIGITS = 6


@dataclass(frozen=True, slots=True)
class Arg:
    """One kernel parameter. Arrays have a ``shape``; scalars (role ``scalar``) have ``shape == ()``."""

    name: str
    dtype: str
    role: Role = "in"
    shape: tuple[int, ...] = ()
    low: float = -2.0
    high: float = 2.0

    def __post_init__(self) -> None:
        lookup_dtype(self.dtype)
        if self.role in ("scalar",) and self.shape:
            raise ValueError(f"scalar argument {self.name!r} must have shape (), got {self.shape}")
        if self.role not in ("scalar", "aux") and not self.shape:
            raise ValueError(f"array argument {self.name!r} needs a shape")
        if not self.low <= self.high:
            raise ValueError(f"argument {self.name!r}: low={self.low} > high={self.high}")

    @property
    def is_output(self) -> bool:
        return self.role in ("out", "inout")

    @property
    def is_param(self) -> bool:
        return self.role != "aux"


@dataclass(frozen=True, slots=True)
class Tolerance:
    """``|got - expected| <= atol + rtol * |expected|`` element-wise; ``rtol == atol == 0`` means exact."""

    rtol: float
    atol: float
    #: ``(output, rtol, atol)`` for outputs checked more tightly than ``rtol``/``atol`` (which then hold the
    #: loosest of them): one kernel's outputs can need very different tolerances (an accumulator of 10^4 terms
    #: beside a value near 1, or an exact integer histogram)
    per_output: tuple[tuple[str, float, float], ...] = ()

    def of(self, output: str) -> "Tolerance":
        """The tolerance ``output`` is checked with."""
        for name, rtol, atol in self.per_output:
            if name == output:
                return Tolerance(rtol, atol)
        return self

    def as_dict(self) -> dict[str, float]:
        return {"rtol": self.rtol, "atol": self.atol}


@dataclass(frozen=True, slots=True)
class Program:
    """What a generator returns: kernel source (using :data:`PLACEHOLDER` as the kernel name) and how to run it.

    ``meta`` is whatever the family's reference needs (an expression tree, a statement list...).
    ``features`` are JSON-able descriptive tags copied into the record (dtype, operators used...).
    """

    source: str
    args: tuple[Arg, ...]
    dim: tuple[int, ...]
    meta: Any = None
    features: Mapping[str, Any] = field(default_factory=dict)
    differentiable: bool = False
    block_dim: int | None = None
    tiled: bool = False


@dataclass(frozen=True, slots=True)
class KernelSpec:
    """A program with its identity: family, seed, and content-addressed kernel name."""

    family: str
    family_version: int
    seed: int
    kernel_name: str
    program: Program

    @property
    def source(self) -> str:
        return self.program.source

    @property
    def args(self) -> tuple[Arg, ...]:
        return self.program.args

    @property
    def meta(self) -> Any:
        return self.program.meta


Generator = Callable[[np.random.Generator], Program]
Reference = Callable[[KernelSpec, Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]
InputSampler = Callable[[KernelSpec, np.random.Generator], dict[str, np.ndarray]]
#: (spec, inputs, device, namespace) -> {parameter name: launch value}; namespace is where the kernel's source
#: ran (to reach its @wp.struct types). Values it omits are made by the harness (arrays, scalars).
Preparer = Callable[[KernelSpec, Mapping[str, np.ndarray], str, dict], dict]


@dataclass(frozen=True, slots=True)
class Family:
    """Everything particular to one kernel family."""

    name: str
    description: str
    generate: Generator
    reference: Reference
    tolerance: Callable[[KernelSpec], Tolerance]
    version: int = 1
    weight: float = 1.0
    sample_inputs: InputSampler | None = None
    prepare: Preparer | None = None
    chunk_size: int = 32
    covers: tuple[str, ...] = ()
    #: the generator takes the kernel's seed as well (``generate(rng, seed=seed)``): a generator that screens its
    #: programs with the verifier's checks can then use the very inputs the verifier will draw for that seed
    seeded: bool = False
    #: earlier versions whose programs this version still makes from the same seeds (a version that changed only
    #: the verification, e.g. a tolerance): their records regenerate and can be judged under this one
    same_programs_as: tuple[int, ...] = ()
    #: the backends its records can be made on; a run asking for another makes none of this family there (the
    #: family's docstring says why)
    backends: tuple[str, ...] = ("cpu", "cuda")

    @property
    def generators(self) -> frozenset[str]:
        """The ``family@version`` names whose programs this family makes: its own and :attr:`same_programs_as`."""
        return frozenset(f"{self.name}@{v}" for v in (self.version, *self.same_programs_as))

    def makes_programs_of(self, generator: str | None) -> bool:
        """Whether ``generator`` (a record's ``family@version``) names this family at a version whose programs
        this one makes."""
        return generator in self.generators

    def spec(self, seed: int, rng: np.random.Generator) -> KernelSpec:
        """Run the generator and give the program its content-addressed name."""
        program = self.generate(rng, seed=seed) if self.seeded else self.generate(rng)
        if PLACEHOLDER not in program.source:
            raise ValueError(f"family {self.name!r}: generated source does not define {PLACEHOLDER!r}")
        digest = hashlib.sha256(program.source.encode("utf-8")).hexdigest()[:NAME_HASH_DIGITS]
        name = f"{self.name}_{digest}"
        source = re.sub(rf"\b{PLACEHOLDER}", name, program.source)
        return KernelSpec(self.name, self.version, seed, name, replace(program, source=source))
