"""Construct coverage: which Warp builtins and language constructs the datasets' kernels use, side by side with
the kernels Warp itself ships (its tests, examples, ``warp.fem`` and the other modules of the installed package).

    wkf-coverage [production/cpu_code production/cuda_code] [--json out.json] [--min-real 5] [--min-records 10]

**Counting.** Sources are parsed with :mod:`ast` (nothing is imported or run). A kernel is a function decorated
with ``@wp.kernel`` or ``@wp.kernel(...)`` where ``wp`` is any name bound by ``import warp`` / ``import warp as X``
anywhere in the file, or with ``kernel`` imported by ``from warp import kernel``. Each kernel counts each construct
once (presence, not occurrences), including the constructs of the ``@wp.func`` helpers it reaches, transitively,
by name within the same file (every definition of an overloaded name counts). Keys:

- ``builtin:NAME`` a call resolving to an entry of Warp's builtin table (``warp._src.context.builtin_functions``),
  spelled ``wp.NAME(...)`` or as the Python builtin Warp maps (``min``, ``range``, ``float``...);
  ``op:KIND`` a binary, unary, boolean or comparison operator (``op:Add``, ``op:FloorDiv``, ``op:USub``,
  ``op:Lt``, ``op:chained_compare``); ``augassign:KIND`` an augmented assignment (``augassign:Add``);
- ``type:NAME`` a Warp value type in an annotation, a constructor call or a ``dtype=`` argument, aliases folded to
  the shortest name (``vec3f`` -> ``vec3``); ``float``/``int``/``bool`` annotations count as float32/int32/bool;
  ``type:custom_vector``/``type:custom_matrix`` for ``wp.vector(...)``/``wp.matrix(...)`` types, ``type:tile``;
- ``stmt:...`` for_range, range_step, for_reversed, for_iter, for_else, while, if, elif, else, ifexp, break,
  continue, return (in the kernel body), nested_loop, loop_depth3, tuple_unpack, annassign, assert, with,
  component_assign (subscript store into a local), attr_assign; ``expr:xyzw``/``expr:attribute`` attribute
  reads; ``lit:float``/``lit:int``/``lit:bool``/``lit:str``; ``const:wp_constant`` a module ``wp.constant``;
- ``func:helper``, ``func:nested_call``, ``func:overload`` (a name defined twice with ``@wp.func`` or declared
  with ``@wp.overload``), ``func:generic`` (``Any``, ``typing.Any``, ``wp.Scalar``/``Float``/``Int``
  annotations), ``func:closure`` (helper defined inside a function), ``func:static_call`` (``wp.static(f)(...)``),
  ``func:grad``/``func:replay``/``func:native``, ``func:default_arg``, ``func:return_tuple``,
  ``func:multiple_returns``; ``kernel:generic``, ``kernel:overload``, ``kernel:closure``, ``kernel:opt:KW``;
- ``struct:param``, ``struct:func_arg``, ``struct:array_dtype``, ``struct:construct``, ``struct:nested`` (a used
  ``@wp.struct`` has a field whose type is another struct of the file), ``struct:array_field``;
- ``array:KIND`` for kernel/helper array parameters (``array:array``, ``array:array2d``... ``wp.array(ndim=2)``
  is ``array:array2d``; ``indexedarray``, ``fabricarray``...), ``array:store``, ``array:load``,
  ``array:view`` (fewer indices than dimensions), ``array:slice``, ``array:shape``, ``array:store_other`` (a
  subscript store into a struct's field or a parameter whose annotation is not resolved);
- ``tid:1d`` ... ``tid:4d`` the launch dimensionality from ``i, j = wp.tid()``, ``tid:other`` (tid not unpacked
  at once), ``tid:none``; ``warp:NAME`` any other ``wp.`` attribute (``wp.pi``, ``wp.MeshQueryPoint``...).

Not resolved (pragmatic, stated): helpers or structs imported from other files or reached through an attribute
(``module.helper``), functions passed in by a kernel factory's closure, kernels whose decorator is reached by
another path (``warp._src.context.kernel``), and ``from warp import *``.

**Divergence.** For a corpus C (Warp's non-test kernels, or a dataset's records) and construct k, let c_C(k) be
the number of its kernels/records that use k, and P_C(k) = c_C(k) / sum_j c_C(j) over the union of keys of both
corpora (the construct-presence distribution). The divergence is the Jensen-Shannon divergence in bits,
JSD(P, Q) = KL(P || M)/2 + KL(Q || M)/2 with M = (P + Q)/2: 0 for identical distributions, 1 for disjoint ones.

**Gap.** Constructs used by at least ``--min-real`` of Warp's non-test kernels that a dataset has in fewer than
``--min-records`` records, ranked by how many of Warp's non-test kernels use them.
"""

from __future__ import annotations

import argparse
import ast
import builtins as _pybuiltins
import json
import math
import os
import re
import sys
import textwrap
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

import pyarrow.parquet as pq

DEFAULT_DATASETS = (Path("production/cpu_code"), Path("production/cuda_code"))

# Constructs known not to run on the CPU build, with the reason (Warp 1.19 has no per-builtin CUDA-only flag:
# every builtin has a CPU implementation, tile builtins with CPU tile semantics, a block width of 1).
CPU_UNSUPPORTED = {
    "kernel:opt:entry_point_abi": "entry_point_abi='external_constant_params' raises WarpCodegenError "
                                  "'not supported by the CPU backend' (warp/tests/test_codegen.py)",
}

# Constructs the records leave out by design, with the reason (listed beside the CPU exceptions; never hidden).
BY_DESIGN = {
    "kernel:opt:module": "module='unique' gives each kernel a Warp module of its own; production compiles a chunk's "
                         "kernels as one module (the unit of compile cost), and with strip_hash a kernel's generated "
                         "code does not depend on its module, so the option would change the decorator line only",
}


# Constructs no CUDA record can hold, with the reason (exceptions of the CUDA dataset only).
_MATHDX = ("on CUDA Warp builds it from cuFFTDx device functions linked from libmathdx as LTO-IR, which the "
           "generated CUDA C++ does not contain: no record could rebuild from its own fields, and the judge refuses "
           "link-time inputs (the `spectral` family makes these records on the CPU backend only)")
CUDA_RECORDS_UNSUPPORTED = {"builtin:tile_fft": _MATHDX, "builtin:tile_ifft": _MATHDX}


def exception_of(key: str, device: str | None = None) -> str | None:
    """Why a construct may stay below the coverage threshold: it cannot run on the CPU build, no record of a CUDA
    dataset (``device == "cuda"``) can hold it, or by design."""
    if key in CPU_UNSUPPORTED:
        return f"cpu: {CPU_UNSUPPORTED[key]}"
    if device == "cuda" and key in CUDA_RECORDS_UNSUPPORTED:
        return f"cuda: {CUDA_RECORDS_UNSUPPORTED[key]}"
    if key in BY_DESIGN:
        return f"by design: {BY_DESIGN[key]}"
    return None


def dataset_device(root: Path) -> str | None:
    """The backend a packed dataset's records were made for (its manifest's ``device``), if it says."""
    try:
        return json.loads((Path(root) / "manifest.json").read_text()).get("device")
    except (OSError, ValueError, AttributeError):
        return None


# Counts decorator lines, in code or strings, to decide whether a file's strings are worth walking (never parses).
_DECORATOR_LINE = re.compile(r"^\s*@\s*(?:wp|warp)\.kernel\b", re.MULTILINE)
ARRAY_KINDS = ("array", "indexedarray", "fabricarray", "fabricarrayarray", "indexedfabricarray",
               "indexedfabricarrayarray", "fixedarray")
GENERIC_HINTS = {"Any", "Scalar", "Float", "Int"}
PY_SCALARS = {"float": "float32", "int": "int32", "bool": "bool"}
OP_TO_BUILTIN = {"Add": "add", "Sub": "sub", "Mult": "mul", "Div": "div", "FloorDiv": "floordiv", "Mod": "mod",
                 "Pow": "pow", "BitAnd": "bit_and", "BitOr": "bit_or", "BitXor": "bit_xor", "LShift": "lshift",
                 "RShift": "rshift", "Invert": "invert", "USub": "neg", "UAdd": "pos", "Not": "unot",
                 "MatMult": "mul"}


@lru_cache(maxsize=1)
def builtin_table() -> frozenset[str]:
    """Names of Warp's builtin table (``warp._src.context.builtin_functions``)."""
    from warp._src.context import builtin_functions

    return frozenset(builtin_functions)


@lru_cache(maxsize=1)
def value_types() -> dict[str, str]:
    """Warp value type name -> canonical (shortest) alias: scalars, vectors, matrices, quat, transform, spatial."""
    import warp
    from warp._src.types import scalar_types

    by_obj = defaultdict(list)
    for name in dir(warp):
        obj = getattr(warp, name)
        if isinstance(obj, type) and (obj in scalar_types or getattr(obj, "_wp_scalar_type_", None) is not None):
            by_obj[obj].append(name)
    out = {"bool": "bool"}
    for names in by_obj.values():
        canon = min(names, key=lambda n: (len(n), n))
        out.update({n: canon for n in names})
    return out


def _array_key(kind: str, ndim: int) -> str:
    return f"array:{kind}" if ndim == 1 else f"array:{kind}{ndim}d"


def _split_array_name(name: str) -> tuple[str, int] | None:
    """``array2d`` -> (``array``, 2); ``indexedarray`` -> (``indexedarray``, 1); other names -> None."""
    for kind in sorted(ARRAY_KINDS, key=len, reverse=True):
        if name == kind:
            return kind, 1
        if name.startswith(kind) and name[len(kind):] in ("1d", "2d", "3d", "4d"):
            return kind, int(name[len(kind)])
    return None


def _statements(body: list[ast.stmt], in_function: bool):
    """Every statement under ``body`` (nested blocks, classes and functions included), with whether it lies
    inside a function; expressions are not walked, which keeps large files cheap."""
    for node in body:
        yield node, in_function
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list):
                yield from _statements(block, inner)
        for sub in getattr(node, "handlers", ()) or getattr(node, "cases", ()):
            yield from _statements(sub.body, inner)


class _Module:
    """What a source file defines: names bound to warp, @wp.func helpers, @wp.struct types, wp.constant globals."""

    def __init__(self, tree: ast.Module, aliases: tuple[str, ...] = ()):
        self.aliases: set[str] = set(aliases)
        self.from_names: dict[str, str] = {}
        self.kernels: list[tuple[ast.FunctionDef, ast.expr]] = []
        self.funcs: dict[str, list[ast.FunctionDef]] = defaultdict(list)
        self.overloaded: set[str] = set()
        self.func_flags: dict[str, set[str]] = defaultdict(set)
        self.structs: dict[str, ast.ClassDef] = {}
        self.constants: set[str] = set()
        self.nested: set[int] = set()  # ids of defs inside a function body
        stmts = list(_statements(tree.body, False))
        for node, _ in stmts:  # imports first: a decorator's alias may be imported below its use
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name == "warp" or (a.name.startswith("warp.") and a.asname is None):
                        self.aliases.add(a.asname or "warp")
            elif isinstance(node, ast.ImportFrom) and node.module == "warp" and node.level == 0:
                self.from_names.update((a.asname or a.name, a.name) for a in node.names if a.name != "*")
        for node, in_function in stmts:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if in_function:
                    self.nested.add(id(node))
                self._classify_def(node)
            elif isinstance(node, ast.ClassDef):
                if any(self.resolve(d.func if isinstance(d, ast.Call) else d) == "struct" for d in node.decorator_list):
                    self.structs[node.name] = node
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                    self.resolve(node.value.func) == "constant":
                self.constants.update(t.id for t in node.targets if isinstance(t, ast.Name))
        self._bind_factories(stmts)
        self.overloaded.update(n for n, defs in self.funcs.items() if len(defs) > 1)

    def _bind_factories(self, stmts: list) -> None:
        """``h = make(3)`` where ``make`` defines a @wp.func inside and returns it: ``h`` names that (closure)
        helper, so a kernel calling ``h`` calls a helper defined inside a function."""
        made: dict[str, list[ast.FunctionDef]] = {}
        for node, in_function in stmts:
            if in_function or not isinstance(node, ast.FunctionDef) or node.name in self.funcs:
                continue
            inner = {d.name: d for d, _ in _statements(node.body, True)
                     if isinstance(d, ast.FunctionDef) and d in self.funcs.get(d.name, ())}
            returned = [r.value.id for r, _ in _statements(node.body, True) if isinstance(r, ast.Return)
                        and isinstance(r.value, ast.Name) and r.value.id in inner]
            if returned:
                made[node.name] = [inner[name] for name in dict.fromkeys(returned)]
        for node, in_function in stmts:
            if not in_function and isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                    isinstance(node.value.func, ast.Name) and node.value.func.id in made:
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id not in self.funcs:
                        self.funcs[target.id].extend(made[node.value.func.id])

    def resolve(self, node: ast.AST) -> str | None:
        """The warp attribute an expression names (``wp.vec3`` / ``warp.types.vec3`` -> ``vec3``), else None."""
        if isinstance(node, ast.Name):
            return self.from_names.get(node.id)
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id in self.aliases and parts:
            return parts[0]
        return None

    def _classify_def(self, fn: ast.FunctionDef) -> None:
        for dec in fn.decorator_list:
            target = dec.func if isinstance(dec, ast.Call) else dec
            name = self.resolve(target)
            if name == "kernel":
                self.kernels.append((fn, dec))
            elif name in ("func", "func_native"):
                self.funcs[fn.name].append(fn)
                if name == "func_native":
                    self.func_flags[fn.name].add("func:native")
            elif name == "overload":
                self.overloaded.add(fn.name)
            elif name in ("func_grad", "func_replay") and isinstance(dec, ast.Call) and dec.args and \
                    isinstance(dec.args[0], ast.Name):
                self.func_flags[dec.args[0].id].add("func:grad" if name == "func_grad" else "func:replay")

    def nested_in_function(self, node: ast.AST) -> bool:
        return id(node) in self.nested


class _Visitor(ast.NodeVisitor):
    """Constructs of one function's own signature and body; collects the helpers and structs it names."""

    def __init__(self, module: _Module, fn: ast.FunctionDef, is_kernel: bool):
        self.m, self.fn, self.is_kernel = module, fn, is_kernel
        self.keys: set[str] = set()
        self.helpers: set[str] = set()
        self.structs: set[str] = set()
        self.array_ndim: dict[str, int] = {}
        self.params: set[str] = set()
        self.loop_depth = 0
        self.returns = 0

    # NodeVisitor's visit and generic_visit, with the method looked up once per node class and the fields that
    # hold no constructs (expression contexts, operator tokens) skipped: the datasets have thousands of sources.
    _methods: dict[type, object] = {}
    _skip = frozenset(("ctx", "op", "ops", "type_comment"))

    def visit(self, node):
        method = self._methods.get(type(node))
        if method is None:
            method = self._methods[type(node)] = getattr(type(self), "visit_" + type(node).__name__,
                                                         type(self).generic_visit)
        return method(self, node)

    def generic_visit(self, node):
        for field in node._fields:
            if field in self._skip:
                continue
            value = getattr(node, field, None)
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)

    # -- annotations -----------------------------------------------------------------------------------------
    def annotation(self, node: ast.AST | None, role: str) -> int | None:
        """Keys of a type annotation; returns the array dimensionality when it is an array type."""
        if node is None:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return None
        if isinstance(node, ast.Name) and node.id in self.m.structs:
            self.structs.add(node.id)
            self.keys.add("struct:param" if self.is_kernel else "struct:func_arg")
            return None
        if isinstance(node, ast.Name) and node.id in PY_SCALARS and node.id not in self.m.from_names:
            self.keys.add(f"type:{PY_SCALARS[node.id]}")
            return None
        if self._generic(node):
            self.keys.add("kernel:generic" if self.is_kernel else "func:generic")
            return None
        call = node if isinstance(node, ast.Call) else None
        sub = node if isinstance(node, ast.Subscript) else None  # wp.array[float], wp.array[T, Literal[2]]
        name = self.m.resolve(call.func if call else sub.value if sub else node)
        arr = _split_array_name(name) if name else None
        if sub is not None and name is not None:
            params = sub.slice.elts if isinstance(sub.slice, ast.Tuple) else [sub.slice]
            if arr:
                kind, ndim = arr
                lit = params[1] if len(params) > 1 else None
                if isinstance(lit, ast.Subscript) and isinstance(lit.slice, ast.Constant) and \
                        isinstance(lit.slice.value, int):
                    ndim = lit.slice.value
                self.keys.add(_array_key(kind, ndim))
                self._dtype(params[0])
                return ndim
            self._named(name, node)
            self.annotation(params[0], "dtype")
            return None
        if arr:
            kind, ndim = arr
            dtype = None
            if call:
                kw = {k.arg: k.value for k in call.keywords}
                if isinstance(kw.get("ndim"), ast.Constant) and isinstance(kw["ndim"].value, int):
                    ndim = kw["ndim"].value
                dtype = kw.get("dtype", call.args[0] if call.args else None)
            self.keys.add(_array_key(kind, ndim))
            if dtype is not None:
                self._dtype(dtype)
            return ndim
        if name:
            self._named(name, node)
            if call:
                for sub in list(call.args) + [k.value for k in call.keywords]:
                    self.annotation(sub, "dtype")
        return None

    def _dtype(self, node: ast.AST) -> None:
        if isinstance(node, ast.Name) and node.id in self.m.structs:
            self.structs.add(node.id)
            self.keys.add("struct:array_dtype")
        else:
            self.annotation(node, "dtype")

    def _generic(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Name) and node.id == "Any":
            return True
        if isinstance(node, ast.Attribute) and node.attr == "Any" and isinstance(node.value, ast.Name) and \
                node.value.id == "typing":
            return True
        return self.m.resolve(node) in GENERIC_HINTS

    def _named(self, name: str, node: ast.AST) -> None:
        """Key of a resolved warp attribute used as a value type (not as a call)."""
        types = value_types()
        if name in types:
            self.keys.add(f"type:{types[name]}")
        elif name in ("vector", "matrix"):
            self.keys.add(f"type:custom_{name}")
        elif name == "tile":
            self.keys.add("type:tile")
        elif name in GENERIC_HINTS:
            self.keys.add("kernel:generic" if self.is_kernel else "func:generic")
        else:
            self.keys.add(f"warp:{name}")

    def signature(self) -> None:
        args = self.fn.args
        self.params = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
        for a in args.posonlyargs + args.args + args.kwonlyargs:
            ndim = self.annotation(a.annotation, "arg")
            if ndim:
                self.array_ndim[a.arg] = ndim
        if not self.is_kernel:
            self.annotation(self.fn.returns, "return")
            if args.defaults or any(d is not None for d in args.kw_defaults):
                self.keys.add("func:default_arg")

    # -- body ------------------------------------------------------------------------------------------------
    def run(self) -> None:
        self.signature()
        for stmt in self.fn.body:
            self.visit(stmt)
        if not self.is_kernel:
            if self.returns > 1:
                self.keys.add("func:multiple_returns")

    def visit_FunctionDef(self, node):  # nested defs are not part of this function's device code
        return None

    visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = visit_FunctionDef

    def _loop(self, node, key: str):
        self.keys.add(key)
        if self.loop_depth >= 1:
            self.keys.add("stmt:nested_loop")
        if self.loop_depth >= 2:
            self.keys.add("stmt:loop_depth3")
        if node.orelse:
            self.keys.add(f"{key.split('_')[0]}_else" if key.startswith("stmt:for") else "stmt:while_else")
        self.visit(node.iter if isinstance(node, ast.For) else node.test)
        if isinstance(node, ast.For):
            self.visit(node.target)
        self.loop_depth += 1
        for stmt in node.body:
            self.visit(stmt)
        self.loop_depth -= 1
        for stmt in node.orelse:
            self.visit(stmt)

    def visit_For(self, node):
        it = node.iter
        name = None
        if isinstance(it, ast.Call):
            name = self.m.resolve(it.func) or (it.func.id if isinstance(it.func, ast.Name) else None)
        if name == "range":
            self._loop(node, "stmt:for_range")
            if len(it.args) == 3:
                self.keys.add("stmt:range_step")
        elif name == "reversed":
            self._loop(node, "stmt:for_reversed")
        else:
            self._loop(node, "stmt:for_iter")

    def visit_While(self, node):
        self._loop(node, "stmt:while")

    def visit_If(self, node):
        self.keys.add("stmt:if")
        if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
            self.keys.add("stmt:elif")
        elif node.orelse:
            self.keys.add("stmt:else")
        self.generic_visit(node)

    _plain = {ast.IfExp: "stmt:ifexp", ast.Break: "stmt:break", ast.Continue: "stmt:continue",
              ast.Assert: "stmt:assert", ast.With: "stmt:with"}

    def visit_IfExp(self, node):  # the statements whose key is their node class alone
        self.keys.add(self._plain[type(node)])
        self.generic_visit(node)

    visit_Break = visit_Continue = visit_Assert = visit_With = visit_IfExp

    def visit_Return(self, node):
        self.returns += 1
        if self.is_kernel:
            self.keys.add("stmt:return")
        elif isinstance(node.value, ast.Tuple):
            self.keys.add("func:return_tuple")
        self.generic_visit(node)


    def visit_AnnAssign(self, node):
        self.keys.add("stmt:annassign")
        self.annotation(node.annotation, "local")
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.target)

    def visit_Assign(self, node):
        value = node.value
        is_tid = isinstance(value, ast.Call) and self.m.resolve(value.func) == "tid"
        for t in node.targets:
            if isinstance(t, (ast.Tuple, ast.List)):
                if is_tid:
                    self.keys.add(f"tid:{len(t.elts)}d")
                else:
                    self.keys.add("stmt:tuple_unpack")
            elif is_tid:
                self.keys.add("tid:1d")
            self.visit(t)
        if is_tid:
            self.keys.add("builtin:tid")
            for a in value.args:
                self.visit(a)
        else:
            self.visit(value)

    def visit_BinOp(self, node):  # also UnaryOp, BoolOp and AugAssign: the operator token names the key
        prefix = "augassign" if isinstance(node, ast.AugAssign) else "op"
        self.keys.add(f"{prefix}:{type(node.op).__name__}")
        self.generic_visit(node)

    visit_UnaryOp = visit_BoolOp = visit_AugAssign = visit_BinOp

    def visit_Compare(self, node):
        self.keys.update(f"op:{type(o).__name__}" for o in node.ops)
        if len(node.ops) > 1:
            self.keys.add("op:chained_compare")
        self.generic_visit(node)

    def visit_Constant(self, node):
        v = node.value
        kind = {bool: "bool", int: "int", float: "float", str: "str"}.get(type(v))
        if kind:
            self.keys.add(f"lit:{kind}")

    def visit_Subscript(self, node):
        base = node.value
        if isinstance(base, ast.Name) and base.id in self.array_ndim:
            idx = node.slice
            elts = idx.elts if isinstance(idx, ast.Tuple) else [idx]
            if any(isinstance(e, ast.Slice) for e in elts):
                self.keys.add("array:slice")
            elif len(elts) < self.array_ndim[base.id]:
                self.keys.add("array:view")
            self.keys.add("array:store" if isinstance(node.ctx, ast.Store) else "array:load")
        elif isinstance(node.ctx, ast.Store):
            local = isinstance(base, ast.Name) and base.id not in self.params
            self.keys.add("stmt:component_assign" if local else "array:store_other")
        self.generic_visit(node)

    def visit_Attribute(self, node):
        name = self.m.resolve(node)
        if name is not None:
            self._named(name, node)
            return
        if isinstance(node.ctx, ast.Store):
            self.keys.add("stmt:attr_assign")
        elif node.attr in ("x", "y", "z", "w"):
            self.keys.add("expr:xyzw")
        elif node.attr == "shape" and isinstance(node.value, ast.Name) and node.value.id in self.array_ndim:
            self.keys.add("array:shape")
        else:
            self.keys.add("expr:attribute")
        self.visit(node.value)

    def visit_Name(self, node):
        if node.id in self.m.from_names:
            self._named(self.m.from_names[node.id], node)
        elif node.id in self.m.constants:
            self.keys.add("const:wp_constant")
        elif node.id in self.m.funcs:
            self.helpers.add(node.id)  # a helper passed as a value (wp.static, wp.tile_map...)
        elif node.id in self.m.structs:
            self.structs.add(node.id)

    def visit_Call(self, node):
        func = node.func
        if isinstance(func, ast.Call) and self.m.resolve(func.func) == "static":
            self.keys.add("func:static_call")
        name = self.m.resolve(func)
        table = builtin_table()
        if name is not None:
            types = value_types()
            if name in table:
                self.keys.add(f"builtin:{name}")
            if name in types:
                self.keys.add(f"type:{types[name]}")
            elif name not in table:
                self._named(name, func)
            for k in node.keywords:
                if k.arg == "dtype":
                    self.annotation(k.value, "dtype")
                else:
                    self.visit(k.value)
            for a in node.args:
                self.visit(a)
            return
        if isinstance(func, ast.Name):
            if func.id in self.m.funcs:
                self.helpers.add(func.id)
            elif func.id in self.m.structs:
                self.structs.add(func.id)
                self.keys.add("struct:construct")
            elif func.id in table and hasattr(_pybuiltins, func.id):
                self.keys.add(f"builtin:{func.id}")
            for a in list(node.args) + [k.value for k in node.keywords]:
                self.visit(a)
            return
        self.generic_visit(node)


def _struct_keys(module: _Module, names: set[str]) -> set[str]:
    """struct:nested / struct:array_field for the structs named, following struct fields transitively."""
    keys, seen, todo = set(), set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen or name not in module.structs:
            continue
        seen.add(name)
        for stmt in module.structs[name].body:
            if not isinstance(stmt, ast.AnnAssign):
                continue
            for sub in ast.walk(stmt.annotation):
                if isinstance(sub, ast.Name) and sub.id in module.structs:
                    keys.add("struct:nested")
                    todo.append(sub.id)
            ann = stmt.annotation
            target = ann.func if isinstance(ann, ast.Call) else ann
            res = module.resolve(target)
            if res and _split_array_name(res):
                keys.add("struct:array_field")
    return keys


def _function_keys(module: _Module, fn: ast.FunctionDef, is_kernel: bool, cache: dict) -> tuple:
    key = id(fn)
    if key not in cache:
        v = _Visitor(module, fn, is_kernel)
        v.run()
        cache[key] = (frozenset(v.keys), frozenset(v.helpers), frozenset(v.structs))
    return cache[key]


def _kernel_keys(module: _Module, fn: ast.FunctionDef, dec: ast.expr, cache: dict) -> set[str]:
    keys, helpers, structs = _function_keys(module, fn, True, cache)
    keys, structs = set(keys), set(structs)
    if isinstance(dec, ast.Call):
        keys.update(f"kernel:opt:{k.arg}" for k in dec.keywords if k.arg)
    if fn.name in module.overloaded:
        keys.add("kernel:overload")
    if module.nested_in_function(fn):
        keys.add("kernel:closure")
    seen, todo = set(), list(helpers)
    if helpers:
        keys.add("func:helper")
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in module.overloaded:
            keys.add("func:overload")
        keys.update(module.func_flags.get(name, ()))
        for hdef in module.funcs.get(name, ()):
            hkeys, hhelpers, hstructs = _function_keys(module, hdef, False, cache)
            keys.update(hkeys)
            structs.update(hstructs)
            if hhelpers:
                keys.add("func:nested_call")
            todo.extend(hhelpers)
            if module.nested_in_function(hdef):
                keys.add("func:closure")
    keys.update(_struct_keys(module, structs))
    if not any(k.startswith("tid:") for k in keys):
        keys.add("tid:none" if "builtin:tid" not in keys else "tid:other")
    return keys


def kernel_constructs(source: str, aliases: tuple[str, ...] = ()) -> dict[str, set[str]]:
    """Construct keys of every ``@wp.kernel`` in a Python source, by kernel name (later definitions of a name
    are kept under ``name#2``...). ``aliases`` are names taken as bound to warp without an import (snippets).
    A source that does not parse has no kernels."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    return _module_kernels(_Module(tree, aliases))


def _module_kernels(module: _Module) -> dict[str, set[str]]:
    out, cache = {}, {}
    for fn, dec in module.kernels:
        name, n = fn.name, 1
        while name in out:
            n += 1
            name = f"{fn.name}#{n}"
        out[name] = _kernel_keys(module, fn, dec, cache)
    return out


def _snippets(text: str) -> list[str]:
    """Code blocks of a documentation string: ``>>>`` doctest lines, or the indented body of each
    ``.. code-block:: python`` / ``.. testcode::`` / ``::`` block, or else the whole string dedented."""
    lines = text.splitlines()
    prompts = [ln.strip()[4:] for ln in lines if ln.strip().startswith((">>> ", "... ")) or ln.strip() in (">>>", "...")]
    if prompts:
        return ["\n".join(prompts)]
    blocks, i = [], 0
    while i < len(lines):
        head = lines[i].strip()
        if head.startswith((".. code-block:: python", ".. code-block:: py", ".. testcode::", ".. code::")) or \
                (head.endswith("::") and not head.startswith("..")):
            indent = len(lines[i]) - len(lines[i].lstrip())
            body, i = [], i + 1
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                body.append(lines[i])
                i += 1
            blocks.append(textwrap.dedent("\n".join(body)))
        else:
            i += 1
    return blocks or [textwrap.dedent(text)]


def _string_kernels(tree: ast.Module) -> list[dict[str, set[str]]]:
    """Kernels written inside string constants (documentation examples, sources a test compiles)."""
    out, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str) and ".kernel" in node.value:
                for code in _snippets(node.value):
                    found = kernel_constructs(code, aliases=("wp",))
                    if found:
                        out.append(found)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return out


# -- corpora ---------------------------------------------------------------------------------------------------
def warp_corpus(package_dir: Path | None = None) -> dict:
    """Count constructs over every kernel in the installed warp package; ``tests/`` kernels are kept apart."""
    if package_dir is None:
        import warp

        package_dir = Path(os.path.dirname(warp.__file__))
    counts = {"all": Counter(), "non_test": Counter()}
    kernels = {"all": 0, "non_test": 0}
    by_area, files, in_strings = Counter(), 0, 0
    for path in sorted(package_dir.rglob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if "kernel" not in text:
            continue
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
        found = [_module_kernels(_Module(tree))]
        # Decorators written inside strings (documentation examples, test sources) are looked for only when
        # the text has more decorator lines than the code has kernels: walking every expression is costly.
        if len(_DECORATOR_LINE.findall(text)) > len(found[0]):
            found += _string_kernels(tree)
        n = sum(len(f) for f in found)
        if not n:
            continue
        files += 1
        rel = path.relative_to(package_dir)
        is_test = rel.parts[0] == "tests"
        area = rel.parts[0] if len(rel.parts) > 1 else "(top)"
        by_area[area] += n
        in_strings += n - len(found[0])
        for keys in (k for f in found for k in f.values()):
            kernels["all"] += 1
            counts["all"].update(keys)
            if not is_test:
                kernels["non_test"] += 1
                counts["non_test"].update(keys)
    return {"package_dir": str(package_dir), "files_with_kernels": files, "kernels": kernels,
            "kernels_in_strings": in_strings,
            "kernels_by_area": dict(sorted(by_area.items())), "counts": counts}


def dataset_corpus(root: Path, parsed: dict | None = None) -> dict:
    """Count constructs over a packed dataset's records (the record's own kernel, found by ``kernel_name``)."""
    counts, programs = Counter(), defaultdict(set)
    records = no_kernel = 0
    parsed = {} if parsed is None else parsed  # source -> kernels: datasets of one seed share their programs
    hashes = set()
    for path in sorted((Path(root) / "data").glob("*.parquet")):
        names = pq.read_schema(path).names
        cols = [c for c in ("python_source", "kernel_name", "structural_hash") if c in names]
        table = pq.read_table(path, columns=cols).to_pydict()
        n = len(table["python_source"])
        for i in range(n):
            src = table["python_source"][i]
            if src not in parsed:
                parsed[src] = kernel_constructs(src)
            found = parsed[src]
            kname = table["kernel_name"][i] if "kernel_name" in table else None
            keys = found.get(kname) if kname in found else set().union(*found.values()) if found else set()
            records += 1
            if not found:
                no_kernel += 1
            counts.update(keys)
            h = table["structural_hash"][i] if "structural_hash" in table else None
            if h is not None:
                hashes.add(h)
                for k in keys:
                    programs[k].add(h)
    return {"dataset": str(root), "records": records, "records_without_kernel": no_kernel,
            "programs": len(hashes), "counts": counts,
            "program_counts": Counter({k: len(v) for k, v in programs.items()})}


def jensen_shannon(p_counts: Counter, q_counts: Counter) -> float:
    """JSD in bits between the two count vectors normalised over the union of their keys (0 = identical)."""
    keys = set(p_counts) | set(q_counts)
    sp, sq = sum(p_counts[k] for k in keys), sum(q_counts[k] for k in keys)
    if sp == 0 or sq == 0:
        return 0.0 if sp == sq else 1.0
    total = 0.0
    for k in keys:
        p, q = p_counts[k] / sp, q_counts[k] / sq
        m = (p + q) / 2
        if p:
            total += 0.5 * p * math.log2(p / m)
        if q:
            total += 0.5 * q * math.log2(q / m)
    return max(0.0, min(1.0, total))


def table_entries(counts: Counter) -> set[str]:
    """Builtin-table entries reached: ``builtin:`` keys plus operators mapped to their table entries."""
    out = {k.split(":", 1)[1] for k in counts if k.startswith("builtin:")}
    out |= {OP_TO_BUILTIN[k.split(":", 1)[1]] for k in counts
            if k.startswith(("op:", "augassign:")) and k.split(":", 1)[1] in OP_TO_BUILTIN}
    return out & builtin_table()


def compare(datasets: list[Path], min_real: int = 5, min_records: int = 10, package_dir: Path | None = None) -> dict:
    """The side-by-side comparison: Warp's kernels against each dataset, with gaps and divergences."""
    warp = warp_corpus(package_dir)
    real, real_all = warp["counts"]["non_test"], warp["counts"]["all"]
    parsed: dict[str, dict[str, set[str]]] = {}
    sets = [dataset_corpus(root, parsed) for root in datasets]
    out_sets = []
    for root, ds in zip(datasets, sets):
        device = dataset_device(root)
        gap = [k for k, c in real.items() if c >= min_real and ds["counts"][k] < min_records]
        gap.sort(key=lambda k: (-real[k], k))
        out_sets.append({
            "dataset": ds["dataset"], "name": Path(ds["dataset"]).name, "records": ds["records"],
            "programs": ds["programs"], "records_without_kernel": ds["records_without_kernel"],
            "constructs": len(ds["counts"]),
            "builtin_table_entries": len(table_entries(ds["counts"])),
            "divergence_jsd_vs_non_test": round(jensen_shannon(real, ds["counts"]), 6),
            "divergence_jsd_vs_all": round(jensen_shannon(real_all, ds["counts"]), 6),
            "gap": [{"construct": k, "warp_non_test": real[k], "warp_all": real_all[k],
                     "records": ds["counts"][k], "cpu_unsupported": CPU_UNSUPPORTED.get(k),
                     "exception": exception_of(k, device)} for k in gap],
            "not_in_warp": sorted(k for k in ds["counts"] if real_all[k] == 0),
            "counts": dict(sorted(ds["counts"].items())),
            "program_counts": dict(sorted(ds["program_counts"].items())),
        })
    keys = sorted(set(real_all).union(*(s["counts"] for s in sets)),
                  key=lambda k: (-real[k], -real_all[k], k))
    rows = [{"construct": k, "warp_non_test": real[k], "warp_all": real_all[k],
             "records": {s["name"]: s["counts"].get(k, 0) for s in out_sets},
             "cpu_unsupported": CPU_UNSUPPORTED.get(k), "exception": exception_of(k)} for k in keys]
    return {
        "thresholds": {"min_real": min_real, "min_records": min_records},
        "divergence": "Jensen-Shannon divergence (bits) between construct-presence distributions: P(k) = "
                      "kernels or records using construct k / sum over all constructs of the same count",
        "warp": {"package_dir": warp["package_dir"], "files_with_kernels": warp["files_with_kernels"],
                 "kernels": warp["kernels"], "kernels_by_area": warp["kernels_by_area"],
                 "builtin_table_size": len(builtin_table()),
                 "builtin_table_entries": {"all": len(table_entries(real_all)),
                                           "non_test": len(table_entries(real))}},
        "datasets": out_sets,
        "rows": rows,
    }


def render(result: dict, top: int = 30, all_rows: bool = False) -> str:
    w, th = result["warp"], result["thresholds"]
    nt, na = w["kernels"]["non_test"], w["kernels"]["all"]
    sets = result["datasets"]
    lines = [f"Warp reference: {na} @wp.kernel definitions in {w['files_with_kernels']} files of "
             f"{w['package_dir']} ({nt} outside tests/); builtin-table entries used: {w['builtin_table_entries']['non_test']} "
             f"(non-test), {w['builtin_table_entries']['all']} (all) of {w['builtin_table_size']}"]
    for s in sets:
        lines.append(f"{s['name']}: {s['records']} records ({s['programs']} distinct programs), {s['constructs']} "
                     f"constructs, {s['builtin_table_entries']} builtin-table entries; divergence "
                     f"JSD(Warp non-test || {s['name']}) = {s['divergence_jsd_vs_non_test']:.4f} bits "
                     f"(vs all Warp kernels {s['divergence_jsd_vs_all']:.4f})")
    lines.append("")
    shown = [r for r in result["rows"] if all_rows or r["warp_non_test"] >= th["min_real"]]
    lines.append(f"Constructs used by >= {th['min_real']} of Warp's non-test kernels" if not all_rows else "All constructs")
    head = f"{'construct':<44}{'warp non-test':>20}{'warp all':>10}" + "".join(f"{s['name']:>12}" for s in sets) + "  cpu"
    lines += [head, "-" * len(head)]
    for r in shown:
        cells = "".join(f"{r['records'][s['name']]:>11}{'*' if r['records'][s['name']] < th['min_records'] else ' '}"
                        for s in sets)
        share = f"{r['warp_non_test']} ({100 * r['warp_non_test'] / max(nt, 1):.1f}%)"
        cpu = "no" if r["cpu_unsupported"] else ""
        lines.append(f"{r['construct']:<44}{share:>20}{r['warp_all']:>10}{cells}  {cpu}")
    lines.append(f"(* fewer than {th['min_records']} records; cpu 'no': cannot run on the CPU build)")
    for s in sets:
        lines.append("")
        lines.append(f"Gap in {s['name']}: {len(s['gap'])} constructs used by >= {th['min_real']} Warp non-test "
                     f"kernels with < {th['min_records']} records (top {min(top, len(s['gap']))}, by Warp use)")
        for i, g in enumerate(s["gap"][:top], 1):
            note = f"  [{g['exception'].split(':')[0]}]" if g.get("exception") else ""
            lines.append(f"{i:>4}. {g['construct']:<44}{g['warp_non_test']:>6} Warp kernels{g['records']:>8} records{note}")
    for key, reason in CPU_UNSUPPORTED.items():
        lines.append(f"cpu 'no' {key}: {reason}")
    for key, reason in CUDA_RECORDS_UNSUPPORTED.items():
        lines.append(f"cuda {key}: {reason}")
    for key, reason in BY_DESIGN.items():
        lines.append(f"by design {key}: {reason}")
    return "\n".join(lines)


def summary_lines(result: dict, top: int = 10) -> list[str]:
    """The short section wkf-analyze prints: divergence and the top gaps of each dataset."""
    w = result["warp"]
    lines = [f"coverage vs Warp's own kernels ({w['kernels']['non_test']} non-test of {w['kernels']['all']}):"]
    for s in result["datasets"]:
        top_gaps = ", ".join(f"{g['construct']} ({g['warp_non_test']}/{g['records']})" for g in s["gap"][:top])
        lines.append(f"  {s['name']}: JSD {s['divergence_jsd_vs_non_test']:.4f} bits, {len(s['gap'])} gaps; "
                     f"top (Warp kernels/records): {top_gaps}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wkf-coverage", description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", type=Path, default=list(DEFAULT_DATASETS),
                        help="dataset folders with data/*.parquet (default: production/cpu_code production/cuda_code)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument("--min-real", type=int, default=5, help="Warp non-test kernels for a construct to count")
    parser.add_argument("--min-records", type=int, default=10, help="records a dataset needs to cover a construct")
    parser.add_argument("--top", type=int, default=30, help="gap entries listed per dataset")
    parser.add_argument("--all", action="store_true", help="list every construct, not only those Warp uses")
    args = parser.parse_args(argv)
    for root in args.datasets:
        if not (root / "data").is_dir():
            parser.error(f"{root}: no data/ folder with Parquet shards")
    result = compare(args.datasets, args.min_real, args.min_records)
    print(render(result, args.top, args.all))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
