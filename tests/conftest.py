"""Fixtures for black-box tests of the factory: a throwaway project with a tiny kernel family."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

ROOT_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"

TINY_FAMILY = '''
"""tiny: a two-input float kernel with one random operator and constant (test fixture family)."""
import numpy as np

from harness.family import Arg, Family, Program, Tolerance

N = 16
OPS = ("+", "-", "*")


def generate(rng):
    terms = [("a", "b")[int(rng.integers(2))] for _ in range(int(rng.integers(2, 9)))]
    ops = [OPS[int(rng.integers(len(OPS)))] for _ in terms[1:]]
    c = round(float(rng.uniform(0.5, 2.0)), 3)
    expr = f"a[i] * {c}"
    for op, t in zip(ops, terms[1:]):
        expr = f"({expr} {op} {t}[i])"
    src = (
        "import warp as wp\\n\\n\\n@wp.kernel\\n"
        "def wkf_kernel(a: wp.array(dtype=float), b: wp.array(dtype=float), out: wp.array(dtype=float)):\\n"
        "    i = wp.tid()\\n"
        f"    out[i] = {expr} + b[i]\\n"
    )
    args = (Arg("a", "float32", "in", (N,)), Arg("b", "float32", "in", (N,)), Arg("out", "float32", "out", (N,)))
    return Program(src, args, (N,), meta={"ops": ops, "terms": terms, "c": c}, features={"ops": ops})


def reference(spec, inputs):
    env = {"a": inputs["a"].astype(np.float64), "b": inputs["b"].astype(np.float64)}
    out = env["a"] * float(np.float32(spec.meta["c"]))
    for op, t in zip(spec.meta["ops"], spec.meta["terms"][1:]):
        out = {"+": out + env[t], "-": out - env[t], "*": out * env[t]}[op]
    return {"out": REFERENCE_TWIST(out + env["b"], env["a"], env["b"])}


def REFERENCE_TWIST(out, a, b):
    return out


def tolerance(spec):
    return Tolerance(1e-5, 1e-6)


FAMILY = Family(name="tiny", description="test family", generate=generate, reference=reference,
                tolerance=tolerance, chunk_size=4)
'''


@pytest.fixture(scope="session")
def shared_warp_cache(tmp_path_factory) -> str:
    """One Warp kernel cache for all throwaway projects (Warp's cache is safe across processes)."""
    return str(tmp_path_factory.getbasetemp() / "warp-cache")


@pytest.fixture
def factory_project(pytester: pytest.Pytester, shared_warp_cache, monkeypatch):
    """A project directory with the factory plugin and one family, ``kernels/tiny.py``."""
    monkeypatch.setenv("WARP_CACHE_PATH", shared_warp_cache)
    pytester.makeconftest(ROOT_CONFTEST.read_text())       # the project's own root conftest
    pytester.mkdir("kernels")
    (pytester.path / "kernels" / "tiny.py").write_text(textwrap.dedent(TINY_FAMILY))
    return pytester


def add_family(pytester: pytest.Pytester, name: str, source: str) -> None:
    (pytester.path / "kernels" / f"{name}.py").write_text(source)
