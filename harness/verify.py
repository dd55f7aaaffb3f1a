"""Run a compiled kernel on fresh random inputs and compare it with the family's NumPy reference.

The comparison is ``|got - expected| <= atol + rtol * |expected|`` over elements that are well conditioned.
An element is ill-conditioned when the float64 reference itself moves by more than half the tolerance
under a perturbation of the float inputs the size of rounding noise (``min(32 ulp, rtol/16)``) (kinks of floor/sign/min/max/comparisons,
catastrophic cancellation): there the float32 kernel and the float64 reference may legitimately disagree,
so such elements are masked instead of loosening the tolerance. Integer inputs are never perturbed.
"""

from __future__ import annotations

import hashlib

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import warp as wp

from .dtypes import dtype as lookup_dtype
from .errors import KernelRejected
from .family import Arg, Family, InputSampler, KernelSpec, Tolerance
from .seeds import derive_seed, rng_for

#: what a kernel (or a stand-in for one) computes: inputs by name -> final contents of the outputs
Observe = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]

INPUT_SETS = 3
PERTURB_ULPS = 32          # perturbation of float inputs, in units of that dtype's eps
PERTURB_TRIALS = 2
MAX_MASKED_FRACTION = 0.5
DEAD_INPUT_FRACTION = 0.5  # reject when outputs ignore at least this share of the inputs


@dataclass(slots=True)
class Verification:
    numerics_device: str
    input_sets: int = 0
    elements_compared: int = 0
    elements_masked: int = 0
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    tolerance: Tolerance | None = None
    gradient_checked: bool = False
    #: sha256 of every output array of every input set (not part of a record): two builds whose outputs are
    #: bit-identical on the verifier's inputs have the same digest
    outputs_sha256: str = ""

    def as_dict(self) -> dict:
        return {
            "numerics_device": self.numerics_device,
            "input_sets": self.input_sets,
            "elements_compared": self.elements_compared,
            "elements_masked": self.elements_masked,
            "max_abs_err": float(self.max_abs_err),
            "max_rel_err": float(self.max_rel_err),
            "rtol": self.tolerance.rtol,
            "atol": self.tolerance.atol,
            "gradient_checked": self.gradient_checked,
        } | ({"tolerance_per_output": {name: {"rtol": rtol, "atol": atol}
                                       for name, rtol, atol in self.tolerance.per_output}}
             if self.tolerance.per_output else {})


@dataclass(slots=True)
class _Observed:
    outputs: list[dict[str, np.ndarray]] = field(default_factory=list)
    inputs: list[dict[str, np.ndarray]] = field(default_factory=list)


def default_inputs(spec: KernelSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Uniform values in ``[low, high]`` for inputs; zeros for ``out``; uniform for ``inout``."""
    values = {}
    for arg in spec.args:
        values[arg.name] = _sample(arg, rng, zero=(arg.role == "out"))
    return values


def input_sets(spec: KernelSpec, sampler: InputSampler | None = None) -> list[dict[str, np.ndarray]]:
    """The :data:`INPUT_SETS` input sets the verifier draws for ``spec`` (from its seed): a seeded family can
    size a tolerance on the very values it will be checked with."""
    sampler = sampler or default_inputs
    return [sampler(spec, _input_rng(spec, k)) for k in range(INPUT_SETS)]


def _input_rng(spec: KernelSpec, set_index: int) -> np.random.Generator:
    """The stream input set ``set_index`` of ``spec`` is drawn from (and its conditioning checked with)."""
    return rng_for(derive_seed("wkf-inputs", spec.seed, set_index))


def _sample(arg: Arg, rng: np.random.Generator, zero: bool = False) -> np.ndarray:
    dt = lookup_dtype(arg.dtype)
    shape = tuple(arg.shape) + dt.shape
    if zero:
        return np.zeros(shape, dtype=dt.numpy)
    if dt.is_int:
        return rng.integers(int(arg.low), int(arg.high) + 1, size=shape).astype(dt.numpy)
    return rng.uniform(arg.low, arg.high, size=shape).astype(dt.numpy)


def _as_warp(arg: Arg, value: np.ndarray, device: str, requires_grad: bool = False):
    dt = lookup_dtype(arg.dtype)
    if arg.role == "scalar":
        return dt.warp(value.item()) if not dt.shape else dt.warp(*value.ravel().tolist())
    return wp.array(value, dtype=dt.warp, device=device, requires_grad=requires_grad)


def _perturb(spec: KernelSpec, inputs: Mapping[str, np.ndarray], rng: np.random.Generator, rtol: float) -> dict:
    out = {}
    for arg in spec.args:
        value = inputs[arg.name]
        dt = lookup_dtype(arg.dtype)
        if dt.is_float and arg.role in ("in", "inout", "scalar"):
            eps = float(np.finfo(dt.numpy).eps)
            # model rounding noise: up to PERTURB_ULPS ulps, but well below the tolerance being checked
            scale = max(2 * eps, min(PERTURB_ULPS * eps, rtol / 16)) if rtol > 0 else PERTURB_ULPS * eps
            noise = rng.choice([-1.0, 1.0], size=value.shape) * scale
            out[arg.name] = (value.astype(np.float64) * (1.0 + noise)).astype(value.dtype)
        else:
            out[arg.name] = value.copy()
    return out


def _reference(family: Family, spec: KernelSpec, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    copies = {k: v.copy() for k, v in inputs.items()}
    try:
        result = family.reference(spec, copies)
    except Exception as exc:  # noqa: BLE001
        raise KernelRejected("reference_error", f"reference raised {type(exc).__name__}: {exc}",
                             family=spec.family, seed=spec.seed, kernel_name=spec.kernel_name) from exc
    expected_names = {a.name for a in spec.args if a.is_output}
    if set(result) != expected_names:
        raise KernelRejected("reference_error",
                             f"reference returned outputs {sorted(result)}, expected {sorted(expected_names)}",
                             family=spec.family, seed=spec.seed, kernel_name=spec.kernel_name)
    return dict(result)


def _within(got: np.ndarray, want: np.ndarray, tol: Tolerance) -> np.ndarray:
    return np.abs(got - want) <= tol.atol + tol.rtol * np.abs(want)


def output_tolerance(spec: KernelSpec, tol: Tolerance, name: str) -> Tolerance:
    """What output ``name`` is compared with: exactly when its values are integers (whatever the family's
    tolerance, which may be a float output's beside it), else the family's tolerance for it."""
    arg = next((a for a in spec.args if a.name == name), None)
    if arg is not None and not lookup_dtype(arg.dtype).is_float:
        return Tolerance(0.0, 0.0)
    return tol.of(name)


def _condition_mask(family, spec, inputs, expected, tol, rng) -> dict[str, np.ndarray]:
    """True where the reference is stable under few-ulp input perturbations (or exact, for integers)."""
    if not any(lookup_dtype(a.dtype).is_float for a in spec.args if not a.is_output or a.role == "inout"):
        return {k: np.ones(np.shape(v), dtype=bool) for k, v in expected.items()}
    stable = {k: np.ones(np.shape(v), dtype=bool) for k, v in expected.items()}
    half = {k: Tolerance(t.rtol / 2, t.atol / 2) for k in expected for t in (output_tolerance(spec, tol, k),)}
    for _ in range(PERTURB_TRIALS):
        moved = _reference(family, spec, _perturb(spec, inputs, rng, tol.rtol))
        for name, want in expected.items():
            a = np.asarray(moved[name], dtype=np.float64)
            b = np.asarray(want, dtype=np.float64)
            with np.errstate(invalid="ignore", over="ignore"):
                stable[name] &= _within(a, b, half[name]) & np.isfinite(a) & np.isfinite(b)
    for name, want in expected.items():
        if isinstance(want, np.ma.MaskedArray):
            stable[name] &= ~np.ma.getmaskarray(want)
    return stable


def launch_values(family: Family, spec: KernelSpec, inputs: Mapping[str, np.ndarray], device: str,
                  namespace: dict | None, requires_grad: bool = False) -> dict:
    """Launch values by parameter name: the family's ``prepare`` first, then arrays/scalars for the rest."""
    values = dict(family.prepare(spec, inputs, device, namespace or {})) if family.prepare else {}
    for arg in spec.args:
        if arg.is_param and arg.name not in values:
            grad = requires_grad and arg.role != "scalar" and lookup_dtype(arg.dtype).is_float
            values[arg.name] = _as_warp(arg, inputs[arg.name], device, grad)
    return values


def launch(kernel, spec: KernelSpec, values: dict, device: str, block_dim: int) -> None:
    prog = spec.program
    params = [values[a.name] for a in spec.args if a.is_param]
    if prog.tiled:
        wp.launch_tiled(kernel, dim=list(prog.dim), inputs=params, device=device, block_dim=block_dim)
    else:
        wp.launch(kernel, dim=prog.dim, inputs=params, device=device, block_dim=block_dim)


def launch_block_dim(spec: KernelSpec, device: str) -> int:
    prog = spec.program
    if prog.tiled:
        return prog.block_dim or 64
    return 1 if device == "cpu" else (prog.block_dim or 256)


def run_kernel(family: Family, kernel, spec: KernelSpec, inputs: Mapping[str, np.ndarray], device: str,
               namespace: dict | None = None) -> dict[str, np.ndarray]:
    """Launch ``kernel`` on ``device`` with ``inputs``; return the final value of every output array."""
    values = launch_values(family, spec, inputs, device, namespace)
    launch(kernel, spec, values, device, launch_block_dim(spec, device))
    wp.synchronize_device(device)
    return {a.name: values[a.name].numpy() for a in spec.args if a.is_output}


def verify(family: Family, spec: KernelSpec, kernel, device: str, namespace: dict | None = None) -> Verification:
    """Verify ``kernel`` (compiled from ``spec``) on ``device``; raise :class:`KernelRejected` on any failure."""
    result, observed, first_stable = _check_outputs(
        family, spec, device, lambda inputs: run_kernel(family, kernel, spec, inputs, device, namespace))
    if spec.program.differentiable:
        result.gradient_checked = check_gradient(family, spec, kernel, device, namespace, observed.inputs[0],
                                                 first_stable, result.tolerance)
    return result


def screen(family: Family, spec: KernelSpec, observe: Observe) -> Verification:
    """The verifier's checks with ``observe(inputs)`` standing in for the compiled kernel (for instance an
    interpreter that rounds as Warp does): generators ask them before anything compiles, so that the questions
    and their thresholds live here only. Raises :class:`KernelRejected` (device ``"reference"``) like
    :func:`verify`; the gradient is not checked."""
    return _check_outputs(family, spec, "reference", observe)[0]


def _check_outputs(family: Family, spec: KernelSpec, device: str,
                   observe: Observe) -> tuple[Verification, _Observed, dict[str, np.ndarray]]:
    """Outputs of ``observe`` on :data:`INPUT_SETS` input sets against the reference, conditioning, degeneracy."""
    kernel_tol = family.tolerance(spec)
    result = Verification(numerics_device=device, tolerance=kernel_tol)
    observed = _Observed()
    sampler = family.sample_inputs or default_inputs
    masked_total = 0
    total = 0
    for set_index in range(INPUT_SETS):
        rng = _input_rng(spec, set_index)
        try:
            inputs = sampler(spec, rng)
        except Exception as exc:  # noqa: BLE001
            raise _reject(spec, device, "generator_error", f"input sampler raised {type(exc).__name__}: {exc}")
        expected = _reference(family, spec, inputs)
        stable = _condition_mask(family, spec, inputs, expected, kernel_tol, rng)
        got = observe(inputs)
        observed.inputs.append(inputs)
        observed.outputs.append(got)
        if set_index == 0:
            first_stable = stable
        for name, want in expected.items():
            tol = output_tolerance(spec, kernel_tol, name)
            g = np.asarray(got[name])
            w = np.ma.getdata(want) if isinstance(want, np.ma.MaskedArray) else np.asarray(want)
            if g.shape != w.shape:
                raise _reject(spec, device, "reference_error",
                              f"output {name!r}: kernel shape {g.shape} != reference shape {w.shape}")
            if not np.all(np.isfinite(g.astype(np.float64))):
                bad = int(np.argmax(~np.isfinite(g.astype(np.float64)).ravel()))
                raise _reject(spec, device, "nonfinite",
                              f"output {name!r} has non-finite values (first at flat index {bad}: "
                              f"{g.ravel()[bad]!r}) in input set {set_index}")
            keep = stable[name]
            g64 = g.astype(np.float64)[keep]
            w64 = w.astype(np.float64)[keep]
            total += keep.size
            masked_total += int(keep.size - np.count_nonzero(keep))
            if g64.size == 0:
                continue
            abs_err = np.abs(g64 - w64)
            rel_err = abs_err / np.maximum(np.abs(w64), np.finfo(np.float64).tiny)
            ok = abs_err <= tol.atol + tol.rtol * np.abs(w64)
            if not np.all(ok):
                i = int(np.argmin(ok))
                flat = np.flatnonzero(keep.ravel())[i]
                raise _reject(spec, device, "mismatch",
                              f"output {name!r} input set {set_index} flat index {flat}: got {g64[i]!r}, "
                              f"expected {w64[i]!r}, abs err {abs_err[i]:.3g}, rel err {rel_err[i]:.3g} "
                              f"> rtol={tol.rtol:g} atol={tol.atol:g} ({int(np.size(ok) - np.count_nonzero(ok))}"
                              f" of {np.size(ok)} elements out of tolerance)")
            result.max_abs_err = max(result.max_abs_err, float(abs_err.max()))
            small = np.abs(w64) > tol.atol
            if np.any(small):
                result.max_rel_err = max(result.max_rel_err, float(rel_err[small].max()))
        result.input_sets += 1
    result.elements_compared = total - masked_total
    result.elements_masked = masked_total
    result.outputs_sha256 = outputs_digest(observed.outputs)
    if total == 0 or masked_total > MAX_MASKED_FRACTION * total:
        raise _reject(spec, device, "ill_conditioned",
                      f"{masked_total} of {total} output elements are ill-conditioned (masked); too few to verify")
    _check_degenerate(family, spec, device, observed)
    return result, observed, first_stable


def outputs_digest(outputs: list[dict[str, np.ndarray]]) -> str:
    """sha256 over the outputs of each input set, arrays by name: name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for got in outputs:
        for name in sorted(got):
            a = np.ascontiguousarray(np.asarray(got[name]))
            h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def _reject(spec: KernelSpec, device: str, reason: str, message: str) -> KernelRejected:
    return KernelRejected(reason, message, family=spec.family, seed=spec.seed, device=device,
                          kernel_name=spec.kernel_name)


def _check_degenerate(family: Family, spec: KernelSpec, device: str, observed: _Observed) -> None:
    """Reject outputs that are constant, copies of an input, or blind to most array inputs."""
    outputs = [a for a in spec.args if a.is_output]
    for arg in outputs:
        stacked = np.stack([o[arg.name] for o in observed.outputs])
        if np.all(stacked == stacked.reshape(-1)[0]):
            raise _reject(spec, device, "degenerate_constant",
                          f"output {arg.name!r} is the constant {stacked.reshape(-1)[0]!r} on every input set")
        for other in spec.args:
            if other is arg or other.role == "out":
                continue
            if all(np.shape(i[other.name]) == np.shape(o[arg.name]) and
                   np.array_equal(i[other.name], o[arg.name]) for i, o in zip(observed.inputs, observed.outputs)):
                raise _reject(spec, device, "degenerate_copy", f"output {arg.name!r} is a copy of input {other.name!r}")
    # inputs the program can depend on; a scalar pinned to one value (low == high) cannot show a dependence
    # (object ids such as a mesh's uint64 are handles built by the family's prepare, not values to vary)
    array_inputs = [a for a in spec.args if (a.role == "in" or (a.role == "scalar" and a.low != a.high))
                    and a.dtype != "uint64"]
    if len(array_inputs) < 2:
        return
    base_inputs = observed.inputs[0]
    base = _reference(family, spec, base_inputs)
    dead = []
    for arg in array_inputs:
        rng = rng_for(derive_seed("wkf-dead-input", spec.seed, arg.name))
        changed = dict(base_inputs)
        fresh = _sample(arg, rng)
        for _ in range(8):                    # small integer ranges can redraw the same value: draw again
            if not np.array_equal(fresh, base_inputs[arg.name]):
                break
            fresh = _sample(arg, rng)
        changed[arg.name] = fresh
        moved = _reference(family, spec, changed)
        if all(np.array_equal(np.ma.getdata(moved[k]), np.ma.getdata(base[k]), equal_nan=True) for k in base):
            dead.append(arg.name)
    if dead and len(dead) >= DEAD_INPUT_FRACTION * len(array_inputs):
        raise _reject(spec, device, "degenerate_dead_inputs",
                      f"outputs do not depend on inputs {dead} ({len(dead)} of {len(array_inputs)})")


GRAD_STEP = 1e-6
GRAD_RTOL = {"float16": 3e-2, "float32": 2e-3, "float64": 1e-6}


def check_gradient(family: Family, spec: KernelSpec, kernel, device: str, namespace: dict | None,
                   inputs: Mapping[str, np.ndarray], stable: dict[str, np.ndarray], tol: Tolerance) -> bool:
    """Compare Warp's adjoint with central differences of the float64 reference along a random direction.

    With output weights ``w`` (zero on ill-conditioned elements) and an input direction ``v``, Warp's backward
    pass gives ``sum(grad . v)`` and the reference gives ``sum(w * (f(x + h v) - f(x - h v)) / 2h)``; they must
    agree within a relative tolerance of the absolute-value sums. Returns False when the kernel has no
    float input/output pair to differentiate (nothing was checked), raises KernelRejected on disagreement.
    """
    float_in = [a for a in spec.args if a.role in ("in", "scalar") and lookup_dtype(a.dtype).is_float]
    float_out = [a for a in spec.args if a.role == "out" and lookup_dtype(a.dtype).is_float]
    arrays_in = [a for a in float_in if a.role == "in"]
    if not arrays_in or not float_out or any(a.role == "inout" for a in spec.args):
        return False
    rng = rng_for(derive_seed("wkf-grad", spec.seed))
    directions = {}
    for arg in arrays_in:
        x = np.asarray(inputs[arg.name], dtype=np.float64)
        directions[arg.name] = rng.uniform(-1.0, 1.0, size=x.shape) * (np.abs(x) + 1.0)

    def shifted(step: float) -> dict:
        moved = {k: np.array(val, copy=True) for k, val in inputs.items()}
        for name, v in directions.items():
            moved[name] = np.asarray(inputs[name], dtype=np.float64) + step * v
        return _reference(family, spec, moved)

    # finite differences of the reference first: they decide which output elements are weighed
    plus, minus = shifted(GRAD_STEP), shifted(-GRAD_STEP)
    half_plus, half_minus = shifted(GRAD_STEP / 2), shifted(-GRAD_STEP / 2)
    weights, slopes = {}, {}
    for arg in float_out:
        d = np.ma.getdata(np.asarray(plus[arg.name], dtype=np.float64)
                          - np.asarray(minus[arg.name], dtype=np.float64)) / (2 * GRAD_STEP)
        d_half = np.ma.getdata(np.asarray(half_plus[arg.name], dtype=np.float64)
                               - np.asarray(half_minus[arg.name], dtype=np.float64)) / GRAD_STEP
        # a jump or kink within the step makes the two differences disagree: that element is not weighed
        with np.errstate(invalid="ignore"):
            smooth = np.abs(d - d_half) <= 1e-3 * (np.abs(d) + np.abs(d_half)) + 1e-6
        w = rng.uniform(0.5, 1.5, size=d.shape) * rng.choice([-1.0, 1.0], size=d.shape)
        weights[arg.name] = w * stable[arg.name] * smooth
        slopes[arg.name] = np.where(smooth, d, 0.0)
    fd_dot = float(sum(np.sum(weights[n] * slopes[n]) for n in weights))
    fd_abs = float(sum(np.sum(np.abs(weights[n] * slopes[n])) for n in weights))

    values = launch_values(family, spec, inputs, device, namespace, requires_grad=True)
    tape = wp.Tape()
    with tape:
        launch(kernel, spec, values, device, launch_block_dim(spec, device))
    grads = {}
    for arg in float_out:
        out = values[arg.name]
        grads[out] = wp.array(weights[arg.name].astype(out.numpy().dtype), dtype=out.dtype, device=device)
    tape.backward(grads=grads)
    wp.synchronize_device(device)
    warp_dot = 0.0
    warp_abs = 0.0
    for arg in arrays_in:
        g = values[arg.name].grad.numpy().astype(np.float64)
        warp_dot += float(np.sum(g * directions[arg.name]))
        warp_abs += float(np.sum(np.abs(g * directions[arg.name])))
    tape.zero()
    if not np.isfinite(fd_dot) or not np.isfinite(warp_dot):
        raise _reject(spec, device, "gradient_mismatch", f"non-finite directional derivative: adjoint {warp_dot!r}, "
                                                         f"finite differences {fd_dot!r}")
    dtype = lookup_dtype(float_out[0].dtype).name
    bound = GRAD_RTOL.get(dtype, 2e-3) * max(fd_abs, warp_abs) + 1e-6
    if abs(warp_dot - fd_dot) > bound:
        raise _reject(spec, device, "gradient_mismatch",
                      f"directional derivative from Warp's adjoint {warp_dot:.7g} != finite differences of the "
                      f"reference {fd_dot:.7g} (|diff| {abs(warp_dot - fd_dot):.3g} > {bound:.3g})")
    return True
