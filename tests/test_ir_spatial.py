"""The IR's volume operations (``kernels.ir.volume`` + the volume rows of ``kernels.ir.ops``) against Warp's cpu
build, and the spatial family's IR-built volume programs against the interpreter."""

from __future__ import annotations

import linecache

import numpy as np
import pytest

from kernels.ir import interp, printer
from kernels.ir import nodes as n
from kernels.ir import volume as VOL
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, INT32, UINT64, Array, Vector

VEC3 = Vector(FLOAT32, 3)
I = n.Var("i", INT32)


def _volume_kernel() -> n.Kernel:
    vol = n.Var("vol", UINT64)
    uvw = n.Var("uvw", VEC3)
    out = {name: Array(ty) for name, ty in (("lin", FLOAT32), ("near", FLOAT32), ("back", VEC3), ("look", FLOAT32),
                                            ("idx", VEC3), ("gval", FLOAT32), ("grad", VEC3))}
    zero = n.Const(0.0, FLOAT32)
    body = (n.Let("uvw", n.call("volume_world_to_index", vol, n.Load("pts", Array(VEC3), (I,)))),
            n.Store("idx", out["idx"], (I,), uvw),
            n.Store("lin", out["lin"], (I,), n.call("volume_sample_linear", vol, uvw)),
            n.Store("near", out["near"], (I,), n.call("volume_sample_closest", vol, uvw)),
            n.Store("back", out["back"], (I,), n.call("volume_index_to_world", vol, n.Load("pts", Array(VEC3), (I,)))),
            n.Store("look", out["look"], (I,), n.call("volume_lookup", vol, n.Load("ix", Array(INT32), (I,)),
                                                      n.Load("iy", Array(INT32), (I,)), n.Const(2, INT32))),
            n.Let("g", n.call("vec3", zero, zero, zero)),
            n.LetOut("gs", n.call("volume_sample_grad_linear", vol, uvw), "g"),
            n.Store("gval", out["gval"], (I,), n.Var("gs", FLOAT32)),
            n.Store("grad", out["grad"], (I,), n.Var("g", VEC3)))
    params = (n.Param("vol", UINT64), n.Param("pts", Array(VEC3)), n.Param("ix", Array(INT32)),
              n.Param("iy", Array(INT32)), *(n.Param(k, t) for k, t in out.items()))
    return n.Kernel("volume_probe", params, body)


def _load(src: str, tmp_path, name: str) -> dict:
    fname = str(tmp_path / f"{name}.py")
    linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
    namespace: dict = {}
    exec(compile(src, fname, "exec"), namespace)
    return namespace


def test_volume_rows_print_their_sampling_mode():
    src = printer.kernel_source(_volume_kernel())
    assert "wp.volume_sample_f(vol, uvw, wp.Volume.LINEAR)" in src
    assert "wp.volume_sample_f(vol, uvw, wp.Volume.CLOSEST)" in src
    assert "wp.volume_lookup_f(vol, ix[i], iy[i], 2)" in src
    assert "uvw = wp.volume_world_to_index(vol, pts[i])" in src
    assert "gs = wp.volume_sample_grad_f(vol, uvw, wp.Volume.LINEAR, g)" in src


def test_out_argument_keeps_its_declaration_and_reaches_outputs():
    from kernels.ir import analysis, intervals
    kernel = _volume_kernel()
    assert analysis.remove_dead(kernel) == kernel and not analysis.dead_locals(kernel)
    assert {"vol", "pts", "ix", "iy"} <= analysis.reaching(kernel)
    facts = intervals.analyze(kernel, {"vol": Interval(0.0, 0.0), "pts": Interval(-4.0, 4.0),
                                       "ix": Interval(-2.0, 12.0), "iy": Interval(-2.0, 12.0)}, (8,))
    assert not facts.violations
    declare = kernel.body[6]
    only_value = analysis.remove_dead(n.Kernel("k", kernel.params, kernel.body[:-1])).body    # grad unread
    assert any(isinstance(s, n.LetOut) for s in only_value) and declare in only_value
    neither = analysis.remove_dead(n.Kernel("k", kernel.params, kernel.body[:-2])).body
    assert not any(isinstance(s, n.LetOut) for s in neither) and declare not in neither


def test_bound_ids_are_released_and_volumes_are_checked():
    vol = VOL.DenseVolume(np.zeros((2, 2, 2), np.float32), (0.0, 0.0, 0.0), 0.5, 1.0)
    with VOL.bound(vol) as key:
        assert VOL.handle(np.full(4, key, np.uint64)) is vol
    assert key not in VOL.HANDLES
    with pytest.raises(ValueError):
        VOL.DenseVolume(np.zeros((2, 2, 2), np.float32), (0.0, 0.0, 0.0), 0.3, 0.0)     # not a power of two
    with pytest.raises(ValueError):
        VOL.DenseVolume(np.full((2, 2, 2), 9.0, np.float32), (0.0, 0.0, 0.0), 0.5, 0.0)  # values out of range


def test_warp_volume_queries_agree_bit_for_bit_with_the_interpreter(tmp_path):
    wp = pytest.importorskip("warp")
    wp.init()
    kernel = _volume_kernel()
    namespace = _load(printer.kernel_source(kernel), tmp_path, "volume_probe")
    device = wp.get_device("cpu")
    size = 512
    for seed in range(6):
        rng = np.random.default_rng(seed)
        shape = tuple(int(x) for x in rng.integers(2, 11, 3))
        voxel = float(rng.choice(VOL.VOXELS))
        origin = tuple(float(np.float32(x)) for x in np.round(rng.uniform(-2.0, 2.0, 3), 3))
        values = rng.uniform(-2.0, 2.0, shape).astype(np.float32)
        volume = VOL.DenseVolume(values, origin, voxel, round(float(rng.uniform(-1, 1)), 2))
        warp_volume = wp.Volume.load_from_numpy(values, min_world=origin, voxel_size=voxel,
                                                bg_value=volume.background, device=device)
        inputs = {"pts": (np.asarray(origin) + rng.uniform(-2.0, np.asarray(shape) + 2.0, (size, 3)) * voxel
                          ).astype(np.float32),
                  "ix": rng.integers(-2, 12, size).astype(np.int32), "iy": rng.integers(-2, 12, size).astype(np.int32)}
        outs = {p.name: wp.zeros(size, dtype=wp.vec3 if p.type.dtype == VEC3 else wp.float32, device=device)
                for p in kernel.params[4:]}
        arrays = {"pts": wp.array(inputs["pts"], dtype=wp.vec3, device=device),
                  "ix": wp.array(inputs["ix"], dtype=wp.int32, device=device),
                  "iy": wp.array(inputs["iy"], dtype=wp.int32, device=device)}
        wp.launch(namespace["volume_probe"], dim=size, inputs=[warp_volume.id, *arrays.values(), *outs.values()],
                  device=device, block_dim=1)
        with VOL.bound(volume) as key:
            want = interp.run(kernel, (size,), {**inputs, "vol": np.uint64(key), **{k: np.zeros((size, 3) if
                              p.type.dtype == VEC3 else size) for k, p in ((p.name, p) for p in kernel.params[4:])}})
        for name, arr in outs.items():
            np.testing.assert_array_equal(arr.numpy(), want[name], err_msg=f"{name}, seed {seed}")


def test_spatial_volume_programs_agree_with_warp(tmp_path):
    wp = pytest.importorskip("warp")
    wp.init()
    from dataclasses import replace

    from harness.family import KernelSpec
    from kernels import spatial as S
    progs = [S.draw_volume(np.random.default_rng(100 + k)) for k in range(6)]
    kernels = [replace(p.meta.kernel, name=f"vol_prog_{k}") for k, p in enumerate(progs)]
    namespace = _load(printer.module(kernels, module_name="ir_spatial_volume"), tmp_path, "ir_spatial_volume")
    for k, prog in enumerate(progs):
        spec = KernelSpec("spatial", 2, k, f"vol_prog_{k}", prog)
        inputs = S.sample_volume(spec, np.random.default_rng(k))
        values = S.prep_volume(prog.meta, inputs, "cpu")
        arrays = {a.name: values.get(a.name) or wp.array(inputs[a.name], dtype=wp.vec3 if inputs[a.name].ndim == 2
                                                           else wp.from_numpy(inputs[a.name]).dtype, device="cpu")
                  for a in prog.args if a.is_param}
        wp.launch(namespace[f"vol_prog_{k}"], dim=S.Q, inputs=list(arrays.values()), device="cpu", block_dim=1)
        want = S.run_volume(spec, inputs, exact=True)
        for name, expected in want.items():
            np.testing.assert_allclose(arrays[name].numpy(), expected, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name}\n{prog.source}")
