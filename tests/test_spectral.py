"""The ``spectral`` family (tile FFTs): its reference follows Warp's transforms, its tolerance is normwise on the
very inputs the verifier draws, and, being CPU-only (``Family.backends``), a CUDA run makes none of its records
and spends nothing on it."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from harness.build import BuildOptions, configure_warp
from harness.family import Arg, KernelSpec, Program
from harness.pipeline import ChunkJob, run_chunk
from harness.seeds import rng_for
from harness.verify import input_sets
from kernels.ir.types import FLOAT32, Vector
from kernels.spectral import FAMILY, REL, Meta, Step, _cmul, reference
from production.coverage import exception_of


def test_tolerance_is_normwise_on_the_verifiers_inputs():
    """Each output's atol is REL * log2(N) times a scale measured on the verifier's own input sets for the seed:
    at least the output's largest value, and for the complex result no more than the largest value any step's
    tile held (checked here by running the steps one prefix at a time)."""
    for seed in range(6):
        spec = FAMILY.spec(seed, rng_for(seed))
        tol, sets = FAMILY.tolerance(spec), input_sets(spec)
        unit = REL[spec.meta.ty] * math.log2(spec.meta.size)
        outs = [a.name for a in spec.args if a.is_output]
        assert {name for name, _, _ in tol.per_output} == set(outs)
        for name in outs:
            peak = max(float(np.abs(reference(spec, inputs)[name]).max()) for inputs in sets)
            assert tol.of(name).atol >= unit * peak * (1 - 1e-12)
        steps = spec.meta.steps
        held = max(float(np.abs(reference(replace(spec, program=replace(spec.program, meta=replace(
            spec.meta, steps=steps[:k], power=None))), inputs)[outs[0]]).max())
            for k in range(len(steps) + 1) for inputs in sets)
        assert tol.of(outs[0]).atol == pytest.approx(unit * max(held, 1.0), rel=1e-12)


def test_reference_inverse_is_unnormalised_like_warps():
    """``wp.tile_ifft`` is ``N * numpy.fft.ifft`` (measured on Warp's CPU build): forward then back is N times
    the input; a filter of ones in between changes nothing."""
    args = (Arg("a", "vec2f", "in", (2, 16), -1.0, 1.0), Arg("h", "vec2f", "in", (2, 16)),
            Arg("out", "vec2f", "out", (2, 16)))
    steps = (Step("fft"), Step("filter", _cmul(Vector(FLOAT32, 2)), "h"), Step("ifft"))
    spec = KernelSpec("spectral", 1, 0, "k", Program("", args, (2,), Meta(FLOAT32, 1, 16, steps, None)))
    x = np.random.default_rng(0).uniform(-1, 1, size=(2, 16, 2))
    ones = np.stack([np.ones((2, 16)), np.zeros((2, 16))], -1)
    np.testing.assert_allclose(reference(spec, {"a": x, "h": ones})["out"], 16 * x, atol=1e-12)
    c = x[..., 0] + 1j * x[..., 1]
    spec = KernelSpec("spectral", 1, 0, "k", Program("", args, (2,), Meta(FLOAT32, 1, 16, steps[:1], None)))
    got = reference(spec, {"a": x, "h": ones})["out"]
    np.testing.assert_allclose(got[..., 0] + 1j * got[..., 1], np.fft.fft(c, axis=-1), atol=1e-12)


def test_a_cuda_run_makes_no_spectral_record_and_builds_nothing(tmp_path):
    configure_warp(tmp_path / "warp-cache")
    build = BuildOptions()
    cuda_only = run_chunk(ChunkJob(FAMILY, "q000", (0,), ("cuda",), 0, build))
    assert cuda_only.records == [] and cuda_only.rejects == [] and cuda_only.compiles == 0
    both = run_chunk(ChunkJob(FAMILY, "q000", (0,), ("cpu", "cuda"), 0, build))
    assert [r["device"] for r in both.records] == ["cpu"], both.rejects


def test_coverage_names_the_cuda_exception():
    assert exception_of("builtin:tile_fft", "cuda").startswith("cuda: ")
    assert exception_of("builtin:tile_ifft", "cuda").startswith("cuda: ")
    assert exception_of("builtin:tile_fft", "cpu") is None
