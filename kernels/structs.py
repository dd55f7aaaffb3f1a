"""structs: @wp.struct types as uniform parameters, arrays of structs, locals, helper arguments and returns.

Each program defines 1-4 struct types (``wkf_kernel_<Name>``) with random fields: float, int (a category used
as a table index or branch key, or a neighbour index used for gathers), ``wp.vec3``, a small ``wp.array``
table (uniform struct only) and nested structs. Kernels take a uniform struct parameter and/or an array of
structs next to plain arrays; they read fields directly (``items[i].mass``) or through a local copy
(``it = items[i]``), index tables with int fields, gather other elements (``items[it.nbr].pos``), branch on
int fields, construct local structs (default or positional constructor), modify their fields (scalars,
vectors, vector components, nested fields, ``+=``), and call @wp.func helpers that read struct arguments,
build and return structs, or update a struct passed *by value* and return it (the caller's copy is unchanged
unless it assigns the result). Outputs are plain arrays (float, vec3, int).

Each struct parameter appears in the argument list as an int scalar: the seed its field data are drawn from
(so the harness's input checks vary a struct's contents by varying that seed). ``prepare`` builds the struct
instances and arrays of structs (through the struct's NumPy dtype) from those data; the reference flattens
struct values into field paths.
Field values are not perturbed by the harness's conditioning check, so the reference also runs emulating
float32 arithmetic and masks elements where that disagrees with float64 (rounding-decided branches).
"""

from __future__ import annotations

import numpy as np
import warp as wp

from harness.family import Arg, Family, KernelSpec, Program, Tolerance
from harness.seeds import derive_seed, rng_for
from kernels import _expr as E
from kernels._common import ARRAY_NAMES, OUT_NAMES, kernel_text, pick
from kernels._funcs_lib import count_token, emulation_moved, fold_in, sanitize

F32 = E.FLOAT32
F32_EMU = E.Scalar("float32", "float", np.float32)
_EMU = [False]

ITEM_NAMES = ("Particle", "Body", "Cell", "Node", "Agent", "Sample", "Element", "Site")
PARAM_NAMES = ("Params", "Config", "Settings", "Material", "Model", "Globals")
INNER_NAMES = ("Frame", "Coeffs", "Limits", "Inner", "Shape", "Transform")
LOCAL_NAMES = ("Acc", "State", "Result", "Accum", "Pair", "Out")
FLOAT_FIELDS = ("mass", "radius", "stiffness", "damping", "charge", "temp", "weight", "scale", "bias", "gain",
                "rate", "alpha", "beta", "energy", "density", "mu", "k", "c0", "c1", "lo", "hi", "dt")
VEC_FIELDS = ("pos", "vel", "force", "axis", "dir", "origin", "normal", "offset", "color", "grad")
KIND_FIELDS = ("kind", "group", "mode", "tag", "level", "phase")
INDEX_FIELDS = ("nbr", "parent", "link", "next", "src", "partner")
TABLE_FIELDS = ("table", "lut", "weights", "coeffs", "levels")
SPARAM_NAMES = ("p", "params", "cfg", "mat", "model", "g")
SARRAY_NAMES = ("items", "bodies", "cells", "nodes", "agents", "elems", "particles")
LOCAL_VARS = ("t", "m", "h", "e", "f", "r", "tmp", "val", "part", "term", "g", "d")
HELPER_WORDS = ("energy", "response", "weigh", "score", "flux", "eval_", "measure", "potential", "cost")


def rt() -> E.Scalar:
    return F32_EMU if _EMU[0] else F32


def _f(x):
    return np.asarray(x, dtype=np.float32 if _EMU[0] else np.float64)


# --------------------------------------------------------------------------------------------------------
# Types


class SType:
    """A struct type: fields are (name, kind, extra); kind: float | vec3 | kind | index | table | SType."""

    def __init__(self, suffix, fields):
        self.suffix, self.fields = suffix, fields

    @property
    def name(self):
        return f"wkf_kernel_{self.suffix}"

    def source(self):
        lines = ["@wp.struct", f"class {self.name}:"]
        for fname, kind, _ in self.fields:
            if isinstance(kind, SType):
                spelled = kind.name
            else:
                spelled = {"float": "float", "vec3": "wp.vec3", "kind": "int", "index": "int",
                           "table": "wp.array(dtype=float)"}[kind]
            lines.append(f"    {fname}: {spelled}")
        return "\n".join(lines)

    def paths(self, prefix=""):
        """Flattened (path, kind, extra) of every leaf field."""
        out = []
        for fname, kind, extra in self.fields:
            if isinstance(kind, SType):
                out += kind.paths(f"{prefix}{fname}.")
            else:
                out.append((f"{prefix}{fname}", kind, extra))
        return out


def _mk_inner(rng, used):
    fields = []
    for _ in range(int(rng.integers(1, 3))):
        if rng.random() < 0.6:
            fields.append((_fresh_field(rng, FLOAT_FIELDS, used), "float", (0.5, 2.0)))
        else:
            fields.append((_fresh_field(rng, VEC_FIELDS, used), "vec3", None))
    return SType(pick(rng, INNER_NAMES), fields)


def _fresh_field(rng, pool, used):
    for _ in range(20):
        name = pick(rng, pool)
        if name not in used:
            used.add(name)
            return name
    name = f"{pick(rng, pool)}{len(used)}"
    used.add(name)
    return name


# --------------------------------------------------------------------------------------------------------
# Vector expressions (vec3): leaves are source texts with a component bound


class V:
    __slots__ = ("op", "args", "mag")

    def __init__(self, op, args, mag):
        self.op, self.args, self.mag = op, args, mag


def v_emit(v: V) -> str:
    op, a = v.op, v.args
    if op == "leaf":
        return a[0]
    if op == "add":
        return f"({v_emit(a[0])} + {v_emit(a[1])})"
    if op == "sub":
        return f"({v_emit(a[0])} - {v_emit(a[1])})"
    if op == "scale":
        return f"({v_emit(a[0])} * {E.emit(a[1], F32)})"
    if op == "cross":
        return f"wp.cross({v_emit(a[0])}, {v_emit(a[1])})"
    if op == "ctor":
        return f"wp.vec3({', '.join(E.emit(c, F32) for c in a)})"
    if op == "neg":
        return f"(-{v_emit(a[0])})"
    raise ValueError(op)


def v_eval(v: V, env) -> np.ndarray:
    op, a = v.op, v.args
    if op == "leaf":
        return env[a[0]]
    if op == "add":
        return v_eval(a[0], env) + v_eval(a[1], env)
    if op == "sub":
        return v_eval(a[0], env) - v_eval(a[1], env)
    if op == "scale":
        s = np.asarray(E.evaluate(a[1], env, rt()))
        return v_eval(a[0], env) * (s[..., None] if s.ndim else s)
    if op == "cross":
        x, y = np.broadcast_arrays(v_eval(a[0], env), v_eval(a[1], env))
        return np.cross(x, y)
    if op == "ctor":
        return np.stack(np.broadcast_arrays(*[np.asarray(E.evaluate(c, env, rt())) for c in a]), -1)
    if op == "neg":
        return -v_eval(a[0], env)
    raise ValueError(op)


# --------------------------------------------------------------------------------------------------------
# Statements


class Env(dict):
    pass


class Stmt:
    def lines(self):
        return []

    def run(self, env):
        pass


class Line(Stmt):
    """A source line with a NumPy action updating env (``fn(env)`` returns {key: value})."""

    def __init__(self, text, fn):
        self.text, self.fn = text, fn

    def lines(self):
        return [self.text] if self.text else []

    def run(self, env):
        env.update(self.fn(env))


class Assign(Stmt):
    """``target = node`` or ``target += node`` (target a local or a struct field path)."""

    def __init__(self, target, node, aug=None):
        self.target, self.node, self.aug = target, node, aug

    def lines(self):
        op = {None: "=", "add": "+=", "sub": "-="}[self.aug]
        return [f"{self.target} {op} {E.emit(self.node, F32)}"]

    def run(self, env):
        v = E.evaluate(self.node, env, rt())
        if self.aug == "add":
            v = env[self.target] + v
        elif self.aug == "sub":
            v = env[self.target] - v
        env[self.target] = v


class VAssign(Stmt):
    def __init__(self, target, v: V, aug=None):
        self.target, self.v, self.aug = target, v, aug

    def lines(self):
        op = {None: "=", "add": "+="}[self.aug]
        return [f"{self.target} {op} {v_emit(self.v)}"]

    def run(self, env):
        v = v_eval(self.v, env)
        env[self.target] = env[self.target] + v if self.aug else v


class CompAssign(Stmt):
    """``s.v[k] = node``: one component of a vec3 field."""

    def __init__(self, target, k, node):
        self.target, self.k, self.node = target, k, node

    def lines(self):
        return [f"{self.target}[{self.k}] = {E.emit(self.node, F32)}"]

    def run(self, env):
        v = np.array(np.broadcast_to(env[self.target], np.broadcast_shapes(
            np.shape(env[self.target]), np.shape(E.evaluate(self.node, env, rt())) + (3,))), copy=True)
        v[..., self.k] = E.evaluate(self.node, env, rt())
        env[self.target] = v


class IfKind(Stmt):
    """``if <int field> == c: target = node`` (the int field is exact: no rounding-decided branch)."""

    def __init__(self, field, cmp, c, body):
        self.field, self.cmp, self.c, self.body = field, cmp, c, body

    def lines(self):
        out = [f"if {self.field} {self.cmp} {self.c}:"]
        for s in self.body:
            out += ["    " + x for x in s.lines()]
        return out

    def run(self, env):
        cond = {"==": np.equal, "!=": np.not_equal, "<": np.less, ">=": np.greater_equal}[self.cmp](
            env[self.field], self.c)
        before = {s.target: env[s.target] for s in self.body}
        for s in self.body:
            s.run(env)
        for t, old in before.items():
            new = env[t]
            c = cond.reshape(cond.shape + (1,) * (np.ndim(new) - np.ndim(cond))) if np.ndim(new) > np.ndim(cond) else cond
            env[t] = np.where(c, new, old)


class Write(Stmt):
    def __init__(self, out, text, fn):
        self.out, self.text, self.fn = out, text, fn

    def lines(self):
        return [f"{self.out}[i] = {self.text}"]

    def run(self, env):
        env["@out:" + self.out] = self.fn(env)


# --------------------------------------------------------------------------------------------------------
# Helpers


class Helper:
    """A @wp.func: parameters (name, kind) where kind is "float", "vec3" or an SType; body statements over a
    flattened environment; returns a float/vec3 (``ret`` node) or a struct (``ret_struct`` variable)."""

    def __init__(self, name, params, body, ret, ret_kind):
        self.name, self.params, self.body, self.ret, self.ret_kind = name, params, body, ret, ret_kind

    def source(self):
        sig = ", ".join(f"{p}: {_spell(k)}" for p, k in self.params)
        lines = ["@wp.func", f"def {self.name}({sig}) -> {_spell(self.ret_kind)}:"]
        for s in self.body:
            lines += ["    " + x for x in s.lines()]
        if isinstance(self.ret_kind, SType):
            lines.append(f"    return {self.ret}")
        elif self.ret_kind == "vec3":
            lines.append(f"    return {v_emit(self.ret)}")
        else:
            lines.append(f"    return {E.emit(self.ret, F32)}")
        return "\n".join(lines)

    def call(self, env, args):
        """args: per parameter, the caller's value (array) or the caller's struct prefix."""
        local = Env()
        for (p, kind), a in zip(self.params, args):
            if isinstance(kind, SType):
                for path, _, _ in kind.paths():
                    local[f"{p}.{path}"] = env[f"{a}.{path}"]
            else:
                local[p] = a
        for s in self.body:
            s.run(local)
        if isinstance(self.ret_kind, SType):
            return {path: local[f"{self.ret}.{path}"] for path, _, _ in self.ret_kind.paths()}
        if self.ret_kind == "vec3":
            return v_eval(self.ret, local)
        return E.evaluate(self.ret, local, rt())


def _spell(kind):
    if isinstance(kind, SType):
        return kind.name
    return {"float": "float", "vec3": "wp.vec3"}[kind]


class CallStmt(Stmt):
    """``target = helper(args)``; struct results are stored under ``target.<path>``."""

    def __init__(self, target, helper, arg_texts, arg_fns):
        self.target, self.helper, self.arg_texts, self.arg_fns = target, helper, arg_texts, arg_fns

    def lines(self):
        return [f"{self.target} = {self.helper.name}({', '.join(self.arg_texts)})"]

    def run(self, env):
        args = [f(env) for f in self.arg_fns]
        res = self.helper.call(env, args)
        if isinstance(self.helper.ret_kind, SType):
            for path, v in res.items():
                env[f"{self.target}.{path}"] = v
        else:
            env[self.target] = res


# --------------------------------------------------------------------------------------------------------
# Generation


class Scope:
    def __init__(self):
        self.f: dict[str, E.Interval] = {}     # float leaves
        self.v: dict[str, float] = {}          # vec3 leaves -> component bound
        self.kinds: list = []                  # (text, K) int category fields
        self.inputs: list[str] = []            # float/vec leaves that come from plain input arrays
        self.structs: dict[str, SType] = {}    # struct-valued variables usable as helper args


class Gen:
    def __init__(self, rng):
        self.rng = rng
        self.n = int(pick(rng, (32, 48, 64)))
        self.types: list[SType] = []
        self.helpers: list[Helper] = []
        self.args: list[Arg] = []
        self.body: list[Stmt] = []
        self.scope = Scope()
        self.counter = 0
        self.meta_structs = []                 # (param name, SType, is_array)
        self.features = {"uniform_struct": False, "struct_array": False, "nested": False, "table": False,
                         "local_copy": False, "gather": False, "local_struct": False, "ctor_args": False,
                         "helper_reads": 0, "helper_makes": 0, "helper_updates": 0, "by_value": False,
                         "if_kind": False, "component_set": False}

    def struct_type(self, fields: list, used: set, inner_names, type_names) -> SType:
        """A struct of ``fields`` in random order, sometimes with one more field of a nested struct type."""
        rng = self.rng
        if rng.random() < 0.3:
            inner = _mk_inner(rng, set())
            self.types.append(inner)
            fields.append((_fresh_field(rng, inner_names, used), inner, None))
            self.features["nested"] = True
        perm = rng.permutation(len(fields))
        return SType(pick(rng, type_names), [fields[k] for k in perm])

    def fresh(self, base):
        self.counter += 1
        return f"{base}{self.counter}"

    def egen(self, leaves):
        return E.ExprGen(self.rng, F32, dict(leaves), binary=("add", "sub", "mul", "div", "min", "max"),
                         p_const=0.2)

    def expr(self, leaves, depth, must=()):
        gen = self.egen(leaves)
        node = sanitize(gen.expr(depth))
        if node.op in ("var", "const") and leaves:
            node = sanitize(gen.apply_binary(pick(self.rng, ("add", "mul", "sub")), node, gen.expr(1)))
        return fold_in(gen, self.rng, node, must, leaves)

    def vexpr(self, vleaves, fleaves, depth=2):
        """A vec3 expression over vec leaves, scaled by scalar expressions."""
        rng = self.rng
        if not vleaves:
            comps = [self.expr(fleaves, int(rng.integers(0, 2))) for _ in range(3)]
            return V("ctor", comps, max(c.iv.mag for c in comps))
        names = list(vleaves)

        def rec(d):
            roll = rng.random()
            if d == 0 or roll < 0.3:
                nm = pick(rng, names)
                return V("leaf", (nm,), vleaves[nm])
            if roll < 0.55:
                s = self.expr(fleaves, int(rng.integers(0, 2))) if fleaves else E.const(1.5)
                if s.iv.mag > 50:
                    s = E.const(round(float(rng.uniform(-2, 2)), 2) or 0.5)
                x = rec(d - 1)
                return V("scale", (x, s), x.mag * s.iv.mag)
            if roll < 0.85:
                x, y = rec(d - 1), rec(d - 1)
                op = pick(rng, ("add", "sub"))
                if v_emit(x) == v_emit(y):          # v - v is zero, v + v a scaling: combine another leaf
                    others = [nm for nm in names if nm != v_emit(x)]
                    if not others:
                        return V("scale", (x, E.const(-1.5)), 1.5 * x.mag)
                    y = V("leaf", (others[0],), vleaves[others[0]])
                return V(op, (x, y), x.mag + y.mag)
            if roll < 0.93 and len(names) > 1:
                a, b = pick(rng, names, 2)
                return V("cross", (V("leaf", (a,), vleaves[a]), V("leaf", (b,), vleaves[b])),
                         2 * vleaves[a] * vleaves[b])
            if fleaves:
                comps = [self.expr(fleaves, int(rng.integers(0, 2))) for _ in range(3)]
                return V("ctor", comps, max(c.iv.mag for c in comps))
            x = rec(d - 1)
            return V("neg", (x,), x.mag)

        v = rec(depth)
        if v.op == "leaf":
            s = self.expr(fleaves, 1) if fleaves else E.const(2.0)
            v = V("scale", (v, s), v.mag * s.iv.mag)
        return v

    # ---- scalar leaves from a vector / struct fields

    def vec_scalars(self, text, mag, others):
        rng = self.rng
        out = {}
        r = rng.random()
        if others and r < 0.4:
            w = pick(rng, list(others))
            out[f"wp.dot({text}, {w})"] = (E.Interval(-3 * mag * others[w], 3 * mag * others[w]),
                                           lambda env, a=text, b=w: np.sum(env[a] * env[b], -1))
        elif r < 0.6:
            out[f"wp.length({text})"] = (E.Interval(0.0, 1.8 * mag),
                                         lambda env, a=text: np.sqrt(np.sum(env[a] * env[a], -1)))
        elif r < 0.75:
            out[f"wp.length_sq({text})"] = (E.Interval(0.0, 3 * mag * mag),
                                            lambda env, a=text: np.sum(env[a] * env[a], -1))
        k = int(rng.integers(3))
        out[f"{text}[{k}]"] = (E.Interval(-mag, mag), lambda env, a=text, k=k: env[a][..., k])
        return out

    def add_derived(self, derived, scope_f):
        for text, (iv, fn) in derived.items():
            self.body.append(Line("", lambda env, t=text, fn=fn: {t: fn(env)}))
            scope_f[text] = iv

    def expose_struct(self, prefix, st: SType, pname):
        """Register the fields of struct value ``prefix`` (source text, e.g. ``it`` or ``items[i]``) whose
        data are the aux arrays ``<pname>.<path>`` as leaves."""
        sc = self.scope

        def values(env, pr=prefix, st=st, p=pname):
            out = {}
            for path, kind, _ in st.paths():
                raw = env[f"@{p}.{path}"]
                out[f"{pr}.{path}"] = raw if kind in ("kind", "index", "table") else _f(raw)
            return out

        self.body.append(Line("", values))
        sc.structs[prefix] = st
        for path, kind, extra in st.paths():
            text = f"{prefix}.{path}"
            if kind == "float":
                sc.f[text] = E.Interval(*extra)
            elif kind == "vec3":
                sc.v[text] = 1.0
            elif kind == "kind":
                sc.kinds.append((text, extra))
                sc.f[f"float({text})"] = E.Interval(0.0, float(extra - 1))
                self.body.append(Line("", lambda env, t=text: {f"float({t})": _f(env[t])}))

    # ---- program

    def build(self) -> Program:
        rng = self.rng
        n = self.n
        sc = self.scope
        has_uniform = rng.random() < 0.7
        has_array = not has_uniform or rng.random() < 0.7
        # plain inputs: at least as many as struct parameters (the harness's dead-input check counts struct
        # parameters as inputs it cannot vary: their data are aux arguments)
        n_in = int(rng.integers(1, 3))
        if has_uniform and has_array:
            n_in = 2
        names = pick(rng, ARRAY_NAMES, n_in + 1)
        inline = rng.random() < 0.4
        for nm in names[:n_in]:
            lo, hi = pick(rng, ((-2.0, 2.0), (0.5, 2.0), (-1.0, 1.0)))
            self.args.append(Arg(nm, "float32", "in", (n,), lo, hi))
            leaf = f"{nm}[i]" if inline else f"{nm}_v"
            self.body.append(Line("" if inline else f"{leaf} = {nm}[i]",
                                  lambda env, nm=nm, leaf=leaf: {leaf: _f(env["@" + nm])}))
            sc.f[leaf] = E.Interval(lo, hi)
            sc.inputs.append(leaf)
        self.plain = names[:n_in]
        # struct parameters
        if has_array:
            self.struct_array()
        if has_uniform:
            self.uniform_struct()
        # random statements
        for _ in range(int(rng.integers(2, 5))):
            roll = rng.random()
            if roll < 0.35:
                self.assign_stmt()
            elif roll < 0.55:
                self.local_struct()
            elif roll < 0.8:
                self.helper_call()
            elif roll < 0.9 and sc.kinds:
                self.if_kind()
            else:
                self.vec_local()
        return self.outputs()

    def struct_array(self):
        rng = self.rng
        n = self.n
        used = set()
        fields = []
        for _ in range(int(rng.integers(1, 4))):
            fields.append((_fresh_field(rng, FLOAT_FIELDS, used), "float",
                           pick(rng, ((0.5, 2.0), (-1.0, 1.0), (0.1, 1.0)))))
        if rng.random() < 0.6:
            fields.append((_fresh_field(rng, VEC_FIELDS, used), "vec3", None))
        if rng.random() < 0.4:
            fields.append((_fresh_field(rng, KIND_FIELDS, used), "kind", int(rng.integers(2, 5))))
        if rng.random() < 0.35:
            fields.append((_fresh_field(rng, INDEX_FIELDS, used), "index", n))
        st = self.struct_type(fields, used, ("frame", "coef", "shape", "limits"), ITEM_NAMES)
        self.types.append(st)
        pname = pick(rng, SARRAY_NAMES)
        self.item_type, self.item_param = st, pname
        self.args.append(Arg(pname, "float32", "in", (n,)))     # placeholder, replaced in outputs()
        self.meta_structs.append((pname, st, True))
        self.features["struct_array"] = True
        local = rng.random() < 0.6
        taken = {a.name for a in self.args}
        prefix = pick(rng, [x for x in ("it", "cur", "me", "el", "obj", "rec") if x not in taken]) if local \
            else f"{pname}[i]"
        if local:
            self.body.append(Line(f"{prefix} = {pname}[i]", lambda env: {}))
            self.features["local_copy"] = True
        self.expose_struct(prefix, st, pname)
        self.item_prefix = prefix
        # gathers through an index field
        for path, kind, extra in st.paths():
            if kind == "index":
                self.features["gather"] = True
                idx = f"{prefix}.{path}"
                targets = [(p2, k2) for p2, k2, _ in st.paths() if k2 in ("float", "vec3")]
                if self.plain and rng.random() < 0.5:
                    arr = pick(rng, self.plain)
                    text = f"{arr}[{idx}]"
                    self.body.append(Line("", lambda env, t=text, a=arr, ix=idx: {t: _f(env["@" + a])[env[ix]]}))
                    lo_hi = next(a for a in self.args if a.name == arr)
                    self.scope.f[text] = E.Interval(lo_hi.low, lo_hi.high)
                elif targets:
                    p2, k2 = pick(rng, targets)
                    text = f"{pname}[{idx}].{p2}"
                    self.body.append(Line("", lambda env, t=text, p=pname, p2=p2, ix=idx: {
                        t: _f(env[f"@{p}.{p2}"])[env[ix]]}))
                    if k2 == "float":
                        fl = next(x for x in st.paths() if x[0] == p2)[2]
                        self.scope.f[text] = E.Interval(*fl)
                    else:
                        self.scope.v[text] = 1.0

    def uniform_struct(self):
        rng = self.rng
        used = set()
        fields = []
        for _ in range(int(rng.integers(1, 3))):
            fields.append((_fresh_field(rng, FLOAT_FIELDS, used), "float", pick(rng, ((0.5, 2.0), (-1.0, 1.0)))))
        if rng.random() < 0.5:
            fields.append((_fresh_field(rng, VEC_FIELDS, used), "vec3", None))
        if rng.random() < 0.45:
            size = int(rng.integers(3, 9))
            fields.append((_fresh_field(rng, TABLE_FIELDS, used), "table", size))
            self.features["table"] = True
        st = self.struct_type(fields, used, ("inner", "coef", "bounds", "frame"), PARAM_NAMES)
        if any(t.suffix == st.suffix for t in self.types):
            st.suffix += "U"
        self.types.append(st)
        pname = pick(rng, SPARAM_NAMES)
        while pname in [a.name for a in self.args]:
            pname += "0"
        self.args.append(Arg(pname, "float32", "in", (self.n,)))   # placeholder
        self.meta_structs.append((pname, st, False))
        self.features["uniform_struct"] = True
        sc = self.scope
        tables = [(f"{pname}.{path}", extra) for path, kind, extra in st.paths() if kind == "table"]
        self.expose_struct(pname, st, pname)
        for key, size in tables:
            # table lookups: by an int category field, or by the thread index
            ks = [(t, k) for t, k in sc.kinds if k <= size]
            if ks and rng.random() < 0.7:
                t, _ = pick(rng, ks)
                text = f"{key}[{t}]"
                self.body.append(Line("", lambda env, tx=text, key=key, t=t: {tx: _f(env["@" + key])[env[t]]}))
            else:
                text = f"{key}[i % {size}]"
                self.body.append(Line("", lambda env, tx=text, key=key, s=size, n=self.n: {
                    tx: _f(env["@" + key])[np.arange(n) % s]}))
            sc.f[text] = E.Interval(-1.0, 1.0)

    # ---- statements

    def assign_stmt(self):
        sc = self.scope
        rng = self.rng
        fl = dict(sc.f)
        for v in pick(rng, list(sc.v), min(2, len(sc.v))) if sc.v else []:
            derived = self.vec_scalars(v, sc.v[v], {w: m for w, m in sc.v.items() if w != v})
            self.add_derived(derived, sc.f)
            fl.update({t: iv for t, (iv, _) in derived.items()})
        name = self.fresh(pick(rng, LOCAL_VARS))
        node = self.expr(fl, int(rng.integers(1, 4)))
        self.body.append(Assign(name, node))
        sc.f[name] = node.iv

    def vec_local(self):
        sc = self.scope
        v = self.vexpr(sc.v, sc.f)
        if v.mag > 1e4:
            return
        name = self.fresh(pick(self.rng, ("u", "w", "dv", "acc_v", "q")))
        self.body.append(VAssign(name, v))
        sc.v[name] = v.mag

    def local_struct(self):
        """A struct built in the kernel (default or positional constructor), then fields modified."""
        rng = self.rng
        sc = self.scope
        used = set()
        fields = [(_fresh_field(rng, ("x", "val", "sum", "lo", "hi", "w", "energy"), used), "float", (-1.0, 1.0))]
        if rng.random() < 0.6:
            fields.append((_fresh_field(rng, ("v", "dir", "acc", "mom", "p"), used), "vec3", None))
        if rng.random() < 0.4:
            fields.append((_fresh_field(rng, ("y", "aux", "second", "norm"), used), "float", (-1.0, 1.0)))
        st = SType(pick(rng, LOCAL_NAMES), fields)
        while any(t.suffix == st.suffix for t in self.types):
            st.suffix += "L"
        self.types.append(st)
        self.features["local_struct"] = True
        var = self.fresh(pick(rng, ("s", "acc", "st", "res", "loc")))
        if rng.random() < 0.4:
            # positional constructor
            self.features["ctor_args"] = True
            texts, fns, ivs = [], [], []
            for fname, kind, _ in fields:
                if kind == "float":
                    node = self.expr(sc.f, int(rng.integers(0, 2)))
                    texts.append(E.emit(node, F32))
                    fns.append((fname, lambda env, nd=node: E.evaluate(nd, env, rt())))
                    ivs.append((fname, "f", node.iv))
                else:
                    v = self.vexpr(sc.v, sc.f, 1)
                    texts.append(v_emit(v))
                    fns.append((fname, lambda env, vv=v: v_eval(vv, env)))
                    ivs.append((fname, "v", v.mag))
            self.body.append(Line(f"{var} = {st.name}({', '.join(texts)})",
                                  lambda env, var=var, fns=fns: {f"{var}.{f}": fn(env) for f, fn in fns}))
            for fname, k, iv in ivs:
                if k == "f":
                    sc.f[f"{var}.{fname}"] = iv
                else:
                    sc.v[f"{var}.{fname}"] = iv
        else:
            self.body.append(Line(f"{var} = {st.name}()", lambda env, var=var, st=st: {
                f"{var}.{path}": (_f(np.zeros(3)) if kind == "vec3" else _f(0.0)) for path, kind, _ in st.paths()}))
            for fname, kind, _ in fields:
                if kind == "float":
                    node = self.expr(sc.f, int(rng.integers(1, 3)))
                    self.body.append(Assign(f"{var}.{fname}", node))
                    sc.f[f"{var}.{fname}"] = node.iv
                else:
                    v = self.vexpr(sc.v, sc.f, 2)
                    self.body.append(VAssign(f"{var}.{fname}", v))
                    sc.v[f"{var}.{fname}"] = v.mag
        sc.structs[var] = st
        # modifications
        for _ in range(int(rng.integers(1, 3))):
            fname, kind, _ = pick(rng, fields)
            target = f"{var}.{fname}"
            if kind == "float":
                leaves = {k: iv for k, iv in sc.f.items() if k != target}
                node = self.expr(leaves, int(rng.integers(1, 3)))
                aug = pick(rng, ("add", "sub", None))
                self.body.append(Assign(target, node, aug))
                old = sc.f[target]
                sc.f[target] = (E.Interval(old.lo + node.iv.lo, old.hi + node.iv.hi) if aug == "add" else
                                E.Interval(old.lo - node.iv.hi, old.hi - node.iv.lo) if aug == "sub" else node.iv)
            elif rng.random() < 0.5:
                k = int(rng.integers(3))
                node = self.expr(sc.f, int(rng.integers(1, 3)))
                self.body.append(CompAssign(target, k, node))
                sc.v[target] = max(sc.v[target], node.iv.mag)
                self.features["component_set"] = True
            else:
                v = self.vexpr({k: m for k, m in sc.v.items() if k != target}, sc.f, 1)
                self.body.append(VAssign(target, v, "add"))
                sc.v[target] = sc.v[target] + v.mag

    def if_kind(self):
        rng = self.rng
        sc = self.scope
        field, K = pick(rng, sc.kinds)
        cmp = pick(rng, ("==", "!=", "<", ">="))
        c = int(rng.integers(0, K)) if cmp in ("==", "!=") else int(rng.integers(1, K))
        targets = [k for k in sc.f if k.isidentifier() or (k.count(".") == 1 and k.split(".")[0] in sc.structs
                                                             and k.split(".")[0] not in self.readonly())]
        targets = [t for t in targets if t not in sc.inputs and _is_local(t, self)]
        name = pick(rng, targets) if targets and rng.random() < 0.6 else None
        if name is None:
            name = self.fresh(pick(rng, LOCAL_VARS))
            node0 = self.expr(sc.f, 1)
            self.body.append(Assign(name, node0))
            sc.f[name] = node0.iv
        node = self.expr({k: iv for k, iv in sc.f.items()}, int(rng.integers(1, 3)))
        self.body.append(IfKind(field, cmp, c, [Assign(name, node)]))
        old = sc.f[name]
        sc.f[name] = E.Interval(min(old.lo, node.iv.lo), max(old.hi, node.iv.hi))
        self.features["if_kind"] = True

    def readonly(self):
        ro = {p for p, _, _ in self.meta_structs}
        if getattr(self, "item_prefix", None):
            ro.add(self.item_prefix)
        return ro

    # ---- helpers

    def helper_call(self):
        rng = self.rng
        sc = self.scope
        kinds = []
        readable = [p for p, st in sc.structs.items() if any(k == "float" for _, k, _ in st.paths())]
        if readable:
            kinds += ["reads", "reads"]
        kinds.append("makes")
        locals_ = [p for p in sc.structs if p not in self.readonly() and p.isidentifier()]
        if locals_:
            kinds += ["updates", "updates"]
        kind = pick(rng, kinds)
        hname = f"wkf_kernel_{pick(rng, HELPER_WORDS)}{len(self.helpers)}"
        if kind == "reads":
            self.helper_reads(hname, pick(rng, readable))
        elif kind == "makes":
            self.helper_makes(hname)
        else:
            self.helper_updates(hname, pick(rng, locals_))

    def helper_reads(self, hname, prefix):
        """``def f(b: S, x: float) -> float`` reading b's fields; called with a struct value."""
        rng = self.rng
        sc = self.scope
        st = sc.structs[prefix]
        bname = pick(rng, ("b", "s", "obj", "q"))
        fl = {}
        vl = {}
        for path, kind, extra in st.paths():
            if kind == "float":
                key = f"{prefix}.{path}"
                fl[f"{bname}.{path}"] = sc.f[key] if key in sc.f else E.Interval(*(extra or (-1.0, 1.0)))
            elif kind == "vec3":
                vl[f"{bname}.{path}"] = sc.v.get(f"{prefix}.{path}", 1.0)
        params = [(bname, st)]
        xarg = None
        if rng.random() < 0.7:
            x = self.expr(sc.f, int(rng.integers(0, 2)))
            fl["x"] = x.iv
            params.append(("x", "float"))
            xarg = x
        body = []
        derived_fns = {}
        for v in list(vl)[:2]:
            d = self.vec_scalars(v, vl[v], {w: m for w, m in vl.items() if w != v})
            for t, (iv, fn) in d.items():
                fl[t] = iv
                derived_fns[t] = fn
        if derived_fns:
            body.append(Line("", lambda env, d=derived_fns: {t: fn(env) for t, fn in d.items()}))
        if rng.random() < 0.5:
            nm = self.fresh(pick(rng, LOCAL_VARS))
            node = self.expr(fl, int(rng.integers(1, 3)))
            body.append(Assign(nm, node))
            fl[nm] = node.iv
        must = [k for k in fl if k == "x"] + [pick(rng, [k for k in fl if k.startswith(bname + ".")] or list(fl))]
        ret = self.expr(fl, int(rng.integers(1, 3)), must=list(dict.fromkeys(must)))
        h = Helper(hname, params, body, ret, "float")
        self.helpers.append(h)
        self.features["helper_reads"] += 1
        target = self.fresh(pick(rng, LOCAL_VARS))
        texts = [prefix] + ([E.emit(xarg, F32)] if xarg is not None else [])
        fns = [lambda env, p=prefix: p] + ([lambda env, nd=xarg: E.evaluate(nd, env, rt())] if xarg is not None else [])
        self.body.append(CallStmt(target, h, texts, fns))
        sc.f[target] = ret.iv

    def helper_makes(self, hname):
        """``def make(a: float, v: wp.vec3) -> S`` building a struct; the kernel reads its fields."""
        rng = self.rng
        sc = self.scope
        used = set()
        fields = [(_fresh_field(rng, ("x", "val", "w", "amp", "level"), used), "float", None)]
        if rng.random() < 0.6:
            fields.append((_fresh_field(rng, ("v", "dir", "n", "p"), used), "vec3", None))
        if rng.random() < 0.4:
            fields.append((_fresh_field(rng, ("y", "aux", "norm"), used), "float", None))
        st = SType(pick(rng, LOCAL_NAMES) + "M", fields)
        while any(t.suffix == st.suffix for t in self.types):
            st.suffix += "M"
        self.types.append(st)
        a = self.expr(sc.f, int(rng.integers(0, 2)))
        params = [("a", "float")]
        texts = [E.emit(a, F32)]
        fns = [lambda env, nd=a: E.evaluate(nd, env, rt())]
        fl = {"a": a.iv}
        vl = {}
        if sc.v and rng.random() < 0.7:
            vname = pick(rng, list(sc.v))
            params.append(("v", "vec3"))
            texts.append(vname)
            fns.append(lambda env, vn=vname: env[vn])
            vl["v"] = sc.v[vname]
        body = [Line(f"r = {st.name}()", lambda env, st=st: {
            f"r.{p}": (_f(np.zeros(3)) if k == "vec3" else _f(0.0)) for p, k, _ in st.paths()})]
        out_f, out_v = {}, {}
        for fname, kind, _ in fields:
            if kind == "float":
                node = self.expr(fl, int(rng.integers(1, 3)), must=["a"])
                body.append(Assign(f"r.{fname}", node))
                out_f[fname] = node.iv
            else:
                v = self.vexpr(vl, fl, 1)
                body.append(VAssign(f"r.{fname}", v))
                out_v[fname] = v.mag
        h = Helper(hname, params, body, "r", st)
        self.helpers.append(h)
        self.features["helper_makes"] += 1
        target = self.fresh(pick(rng, ("s", "res", "made", "out_s")))
        self.body.append(CallStmt(target, h, texts, fns))
        sc.structs[target] = st
        for f, iv in out_f.items():
            sc.f[f"{target}.{f}"] = iv
        for f, m in out_v.items():
            sc.v[f"{target}.{f}"] = m

    def helper_updates(self, hname, var):
        """``def step(s: S, d: float) -> S`` modifies its by-value copy and returns it; the caller binds the
        result to a new name, and may still read its own unchanged copy."""
        rng = self.rng
        sc = self.scope
        st = sc.structs[var]
        self.features["helper_updates"] += 1
        self.features["by_value"] = True
        d = self.expr(sc.f, int(rng.integers(0, 2)))
        fl = {"d": d.iv}
        vl = {}
        for path, kind, _ in st.paths():
            if kind == "float":
                fl[f"s.{path}"] = sc.f[f"{var}.{path}"]
            elif kind == "vec3":
                vl[f"s.{path}"] = sc.v[f"{var}.{path}"]
        body = []
        new_f = {p: fl[f"s.{p}"] for p, k, _ in st.paths() if k == "float"}
        new_v = {p: vl[f"s.{p}"] for p, k, _ in st.paths() if k == "vec3"}
        for path, kind, _ in st.paths():
            if rng.random() < 0.3 and len(st.paths()) > 1:
                continue
            if kind == "float":
                node = self.expr(fl, int(rng.integers(1, 3)), must=["d"])
                aug = pick(rng, ("add", None))
                body.append(Assign(f"s.{path}", node, aug))
                old = fl[f"s.{path}"]
                new_f[path] = E.Interval(old.lo + node.iv.lo, old.hi + node.iv.hi) if aug else node.iv
            else:
                s = E.Node("mul", (E.var("d", fl["d"]), E.const(0.5)), iv=E.Interval(fl["d"].lo * 0.5, fl["d"].hi * 0.5)) \
                    if rng.random() < 0.5 else self.expr(fl, 1, must=["d"])
                v = V("scale", (V("leaf", (f"s.{path}",), vl[f"s.{path}"]), s), vl[f"s.{path}"] * s.iv.mag)
                body.append(VAssign(f"s.{path}", v, "add"))
                new_v[path] = vl[f"s.{path}"] + v.mag
        if not body:
            path = next(p for p, k, _ in st.paths() if k == "float")
            node = self.expr(fl, 1, must=["d"])
            body.append(Assign(f"s.{path}", node, "add"))
            old = fl[f"s.{path}"]
            new_f[path] = E.Interval(old.lo + node.iv.lo, old.hi + node.iv.hi)
        h = Helper(hname, [("s", st), ("d", "float")], body, "s", st)
        self.helpers.append(h)
        target = self.fresh(var.rstrip("0123456789") + "_next" if var[0].isalpha() else "s_next")
        self.body.append(CallStmt(target, h, [var, E.emit(d, F32)],
                                  [lambda env, v=var: v, lambda env, nd=d: E.evaluate(nd, env, rt())]))
        sc.structs[target] = st
        for p, iv in new_f.items():
            sc.f[f"{target}.{p}"] = iv
        for p, m in new_v.items():
            sc.v[f"{target}.{p}"] = m
        self.must_extra = getattr(self, "must_extra", []) + [f"{target}.{p}" for p in new_f][:1]

    # ---- outputs

    def outputs(self) -> Program:
        rng = self.rng
        sc = self.scope
        n = self.n
        outs = pick(rng, OUT_NAMES, 3)
        body_text = "\n".join(x for s in self.body for x in s.lines())
        # leaves nobody read yet (fields of struct parameters excluded: they are data, not code)
        pending = [k for k in sc.f if (k in sc.inputs or _is_local(k, self)) and _count_s(k, body_text) <= (
            0 if k in sc.inputs and k.endswith("[i]") else 1)]
        pending += getattr(self, "must_extra", [])
        vpending = [k for k in sc.v if _is_local(k, self) and _count_s(k, body_text) <= 1]
        for v in vpending[:2]:
            d = self.vec_scalars(v, sc.v[v], {})
            self.add_derived(d, sc.f)
            pending.append(next(iter(d)))
        # struct fields must reach the outputs too: at least one field leaf per struct parameter
        for pname, st, is_arr in self.meta_structs:
            prefix = self.item_prefix if is_arr else pname
            fields = [k for k in sc.f if k.startswith(prefix + ".") or k.startswith(f"float({prefix}.")
                      or k.startswith(f"{pname}.")]
            if fields and not any(_count_s(f, body_text) for f in fields):
                pending.append(pick(rng, fields))
        pending = list(dict.fromkeys(p for p in pending if p in sc.f))
        n_out = 1 if rng.random() < 0.5 else 2
        final_args = []
        for k in range(n_out):
            must = pending if k == n_out - 1 else pending[: len(pending) // 2]
            node = self.expr(sc.f, int(rng.integers(1, 3)), must=must)
            pending = [p for p in pending if p not in E.uses(node)]
            self.body.append(Write(outs[k], E.emit(node, F32), lambda env, nd=node: E.evaluate(nd, env, rt())))
            final_args.append(Arg(outs[k], "float32", "out", (n,)))
        if sc.v and rng.random() < 0.4:
            v = self.vexpr(sc.v, sc.f, 2)
            if v.mag < 1e4:
                self.body.append(Write("out_v", v_emit(v), lambda env, vv=v: v_eval(vv, env)))
                final_args.append(Arg("out_v", "vec3f", "out", (n,)))
        if sc.kinds and rng.random() < 0.3:
            field, K = pick(rng, sc.kinds)
            c = int(rng.integers(2, 5))
            text = f"{field} * {c} + i % {c}"
            self.body.append(Write("out_k", text, lambda env, f=field, c=c: env[f] * c + np.arange(n) % c))
            final_args.append(Arg("out_k", "int32", "out", (n,)))
        # kernel parameter order: plain inputs and struct parameters as generated, outputs last
        params = list(self.args)
        structs = {p: (st, arr) for p, st, arr in self.meta_structs}
        sig = []
        for a in params:
            if a.name in structs:
                st, arr = structs[a.name]
                sig.append(f"{a.name}: wp.array(dtype={st.name})" if arr else f"{a.name}: {st.name}")
            else:
                sig.append(f"{a.name}: wp.array(dtype=float)")
        for a in final_args:
            if a.role == "out":
                sig.append(f"{a.name}: " + {"float32": "wp.array(dtype=float)", "vec3f": "wp.array(dtype=wp.vec3)",
                                             "int32": "wp.array(dtype=int)"}[a.dtype])
        source = kernel_text(", ".join(sig), [x for s in self.body for x in s.lines()],
                             [t.source() for t in _ordered_types(self.types)] + [h.source() for h in self.helpers])
        # Arg list: plain inputs and struct parameters in signature order, then outputs. A struct parameter is
        # spelled as an int scalar: the seed of its field data (see _fields), which prepare turns into the
        # struct value and the reference into field arrays; varying it varies the struct's contents.
        arg_list = []
        for a in params:
            if a.name in structs:
                arg_list.append(Arg(a.name, "int32", "scalar", (), 0, 2**30 - 1))
            else:
                arg_list.append(a)
        arg_list += [a for a in final_args if a.role == "out"]
        meta = {"n": n, "body": self.body, "structs": [(p, st, arr) for p, st, arr in self.meta_structs]}
        feats = {"dtype": "float32", "n": n, "struct_types": len(self.types), "helpers": len(self.helpers)}
        feats.update(self.features)
        # Warp 1.19 adjoints found wrong (measured with minimal kernels): a vector component assignment
        # (``v[k] = x``, also on struct fields) keeps the overwritten component's adjoint flowing into the old
        # value; a @wp.func that modifies its by-value struct parameter corrupts the adjoint of the caller's
        # copy when the caller reads that copy after the call. Such kernels get no gradient check.
        return Program(source, tuple(arg_list), (n,), meta, feats,
                       differentiable=not (self.features["component_set"] or self.features["helper_updates"]))


def _is_local(k, gen):
    """Leaves computed by the kernel (locals, local struct fields), as opposed to parameter data."""
    ro = gen.readonly()
    head = k.split(".")[0].split("[")[0]
    if k.startswith(("float(", "wp.")) or head in ro or any(k.startswith(p + "[") for p, _, _ in gen.meta_structs):
        return False
    return not any(k.startswith(a + "[") for a in gen.plain)


def _ordered_types(types):
    """Nested types first (a struct's field types must be defined before it)."""
    out, seen = [], set()

    def visit(t):
        if id(t) in seen:
            return
        for _, kind, _ in t.fields:
            if isinstance(kind, SType):
                visit(kind)
        seen.add(id(t))
        out.append(t)

    for t in types:
        visit(t)
    return out


# --------------------------------------------------------------------------------------------------------
# Family hooks


def generate(rng: np.random.Generator) -> Program:
    return Gen(rng).build()


def _fields(spec: KernelSpec, pname: str, st: SType, is_array: bool, seed) -> dict[str, np.ndarray]:
    """Field data of struct parameter ``pname``, drawn from its seed: {"<pname>.<path>": array}."""
    key = (spec.kernel_name, pname, int(seed))
    hit = _FIELD_CACHE.get(key)
    if hit is not None:
        return hit
    rng = rng_for(derive_seed("wkf-struct-fields", spec.kernel_name, pname, int(seed)))
    n = spec.meta["n"]
    lead = (n,) if is_array else ()
    out = {}
    for path, kind, extra in st.paths():
        if kind == "float":
            lo, hi = extra
            value = rng.uniform(lo, hi, size=lead).astype(np.float32)
        elif kind == "vec3":
            value = rng.uniform(-1.0, 1.0, size=lead + (3,)).astype(np.float32)
        elif kind in ("kind", "index"):
            value = rng.integers(0, extra, size=lead).astype(np.int32)
        else:                                                   # table
            value = rng.uniform(-1.0, 1.0, size=(extra,)).astype(np.float32)
        out[f"{pname}.{path}"] = value
    if len(_FIELD_CACHE) > 4096:
        _FIELD_CACHE.clear()
    _FIELD_CACHE[key] = out
    return out


_FIELD_CACHE: dict = {}


def _fill(struct_value, st: SType, inputs, prefix, device):
    for fname, kind, _ in st.fields:
        key = f"{prefix}.{fname}"
        if isinstance(kind, SType):
            inner = getattr(struct_value, fname)
            _fill(inner, kind, inputs, key, device)
            setattr(struct_value, fname, inner)
        elif kind == "table":
            setattr(struct_value, fname, wp.array(np.asarray(inputs[key], dtype=np.float32), dtype=float,
                                                  device=device))
        elif kind == "vec3":
            setattr(struct_value, fname, wp.vec3(*np.asarray(inputs[key], dtype=np.float32).tolist()))
        elif kind in ("kind", "index"):
            setattr(struct_value, fname, int(inputs[key]))
        else:
            setattr(struct_value, fname, float(inputs[key]))


def _fill_np(arr, st: SType, inputs, prefix):
    for fname, kind, _ in st.fields:
        key = f"{prefix}.{fname}"
        if isinstance(kind, SType):
            sub = arr[fname]
            _fill_np(sub, kind, inputs, key)
            arr[fname] = sub
        else:
            arr[fname] = inputs[key]


def prepare(spec: KernelSpec, inputs, device, namespace) -> dict:
    values = {}
    for pname, st, is_array in spec.meta["structs"]:
        data = _fields(spec, pname, st, is_array, np.asarray(inputs[pname]))
        cls = namespace[st.name.replace("wkf_kernel", spec.kernel_name, 1)]
        if is_array:
            arr = np.zeros(spec.meta["n"], dtype=cls.numpy_dtype())
            _fill_np(arr, st, data, pname)
            values[pname] = wp.array(arr, dtype=cls, device=device)
        else:
            value = cls()
            _fill(value, st, data, pname, device)
            values[pname] = value
    return values


def _run(spec, inputs, emulate):
    _EMU[0] = emulate
    try:
        env = Env()
        for a in spec.args:
            if a.role == "in":
                env["@" + a.name] = np.asarray(inputs[a.name])
        for pname, st, is_array in spec.meta["structs"]:
            for k, v in _fields(spec, pname, st, is_array, np.asarray(inputs[pname])).items():
                env["@" + k] = v
        with np.errstate(all="ignore"):
            for s in spec.meta["body"]:
                s.run(env)
    finally:
        _EMU[0] = False
    n = spec.meta["n"]
    out = {}
    for a in spec.args:
        if a.role == "out":
            shape = (n, 3) if a.dtype == "vec3f" else (n,)
            out[a.name] = np.broadcast_to(env["@out:" + a.name], shape).astype(
                np.int64 if a.dtype == "int32" else np.float64)
    return out


def reference(spec: KernelSpec, inputs) -> dict[str, np.ndarray]:
    out = _run(spec, inputs, False)
    emu = _run(spec, inputs, True)
    tol = tolerance(spec)
    result = {}
    for name, want in out.items():
        mask = emulation_moved(emu[name], want, tol)
        result[name] = np.ma.masked_array(want, mask=mask) if mask.any() else want
    return result


def tolerance(spec: KernelSpec) -> Tolerance:
    return Tolerance(1e-4, 1e-5)


FAMILY = Family(
    name="structs",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=reference,
    tolerance=tolerance,
    prepare=prepare,
    weight=1.0,
    covers=("wp.struct", "struct parameters", "arrays of structs", "nested structs", "struct array fields",
            "struct constructors", "structs returned from wp.func", "struct by-value semantics"),
)


def _count_s(leaf, text):
    return count_token(leaf, text, glue="_([")
