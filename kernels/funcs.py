"""funcs: @wp.func helpers calling each other: overloads, generic (Any) helpers, tuple and vector returns.

Helpers are created lazily where the program first calls them, so each one's parameter domains are the
intervals of its first arguments; later calls clamp their arguments into those domains. Helper bodies hold
random local statements (``kernels._expr`` trees), conditional updates, early returns under a condition,
constant-trip accumulation loops, and calls to other helpers (a DAG: Warp has no recursion). Variants:
overload sets (same name; float vs int, float vs vec3, or different arity), generic helpers typed with
``typing.Any`` instantiated with several types (float32, float64, int32, vec3), helpers returning tuples that
callers unpack, helpers returning ``wp.vec3`` or taking vectors, and inline calls inside expressions. Kernels
are float32, float64 or int32 (C semantics).

The reference interprets every helper body on lane-vectorised NumPy arrays (early returns by masks). Elements
whose value is decided by rounding are masked by the reference itself: comparisons within rounding distance of
an inexact tie, and (float32 kernels) elements where a second pass emulating float32 arithmetic disagrees with
float64. Both catch what input perturbation cannot: values computed two ways that agree exactly, and
cancellation in terms derived from int inputs, which the harness never perturbs.
"""

from __future__ import annotations

import numpy as np

from harness.family import Arg, Family, KernelSpec, Program
from kernels import _expr as E
from kernels._common import ARRAY_NAMES, OUT_NAMES, kernel_text, pick, type_tolerance
from kernels._funcs_lib import count_token as _count
from kernels._funcs_lib import sane_cond as _sane_cond
from kernels._funcs_lib import emulation_moved, fold_in, sanitize, sanitize_cond

SCAL = {"float32": E.FLOAT32, "float64": E.FLOAT64, "int32": E.INT32}
SPELL = {"float32": "float", "float64": "wp.float64", "int32": "int", "vec3": "wp.vec3"}
ARR_SPELL = {"float32": "wp.array(dtype=float)", "float64": "wp.array(dtype=wp.float64)",
             "int32": "wp.array(dtype=int)", "vec3": "wp.array(dtype=wp.vec3)"}
ZERO = {"float32": "float(0.0)", "float64": "wp.float64(0.0)", "int32": "int(0)"}
HELPER_WORDS = ("smooth", "blend", "energy", "poly", "ramp", "mix", "term", "shape", "weight", "damp", "warp_",
                "lerp", "bump", "kernel_fn", "flux", "pot", "score", "gate", "soft", "fold", "spread",
                "response", "falloff", "trans", "combine", "accum", "eval_", "step_")
PARAM_NAMES = ("x", "y", "z", "a", "b", "c", "t", "s", "p", "q", "h", "r")
VEC_PARAMS = ("v", "w", "d", "n", "u", "e")
LOCAL_NAMES = ("t", "m", "k", "g", "f", "tmp", "val", "part", "term", "h", "r", "e")
GEN_OPS = ("add", "sub", "neg", "min", "max", "abs", "scale")
INT_DOMAIN = 100
MAX_DEPTH = 2            # helper nesting depth (kernel -> helper -> helper)


def _conv(text: str, src: str, dst: str) -> str:
    """Source spelling converting a value of type src to dst (scalar types, no float->int)."""
    if src == dst:
        return text
    return f"float({text})" if dst == "float32" else f"wp.float64({text})"


#: The reference runs twice for float32 kernels: in float64 (the values compared), and emulating float32
#: arithmetic (NumPy float32 ops round like the kernel's, FMA contraction aside). Elements where the two
#: disagree are rounding-sensitive (cancellation or a branch decided by rounding, including ties the
#: input-perturbation check cannot see because int inputs are not perturbed) and are masked.
_EMULATE_F32 = [False]
F32_EMU = E.Scalar("float32", "float", np.float32)


def rt(ty: str) -> E.Scalar:
    """The scalar kind the reference evaluates ``ty`` with in the current pass."""
    return F32_EMU if ty == "float32" and _EMULATE_F32[0] else SCAL[ty]


def _val(x, ty):
    """NumPy value of type ``ty`` in the reference's representation of the current pass."""
    if ty == "int32":
        return np.asarray(x, dtype=np.int64)
    return np.asarray(x, dtype=np.float32 if ty == "float32" and _EMULATE_F32[0] else np.float64)


# --------------------------------------------------------------------------------------------------------
# Statements (shared by helper bodies and the kernel body)


# Lanes whose evaluation passed a comparison within rounding distance of a tie (set during reference()).
# A generated program can compute the same value two ways (e.g. a helper that is constant on its domain, so
# ``b`` and ``helper(b)`` agree up to rounding): the input-perturbation check cannot see such ties, since
# both sides move together, so the reference masks those lanes itself.
_FRAGILE: list = [None]
TIE_RTOL = {"float32": 3e-5, "float64": 1e-11}


def _track(node, env, ty):
    if _FRAGILE[0] is None or ty.is_int or not isinstance(node, E.Node):
        return
    op = node.op
    if op in E.COMPARE_SYMBOL:
        a = np.asarray(E.evaluate(node.args[0], env, ty), dtype=np.float64)
        b = np.asarray(E.evaluate(node.args[1], env, ty), dtype=np.float64)
        rt = TIE_RTOL[ty.name]
        with np.errstate(all="ignore"):
            close = np.abs(a - b) <= rt * (np.abs(a) + np.abs(b)) + rt * 1e-2
            # exactly equal sides are structural identities (min(z, c) vs z, a select passing a value on):
            # they compare the same way in float32. Inexact near-ties are values computed two ways.
            close &= a != b
        _FRAGILE[0] |= np.broadcast_to(close, _FRAGILE[0].shape)
    for child in node.args:
        _track(child, env, ty)


def ev(node, env, ty):
    _track(node, env, ty)
    return E.evaluate(node, env, ty)


def evc(node, env, ty):
    _track(node, env, ty)
    return E.evaluate_cond(node, env, ty)


class Lazy:
    """A leaf spelled inline (``float(k)``, ``wkf_kernel_f(x, 2.0)``): valued where it is read, like Warp."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn


class Env(dict):
    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        return value.fn(self) if isinstance(value, Lazy) else value


class Assign:
    def __init__(self, name, node, ty):
        self.name, self.node, self.ty = name, node, ty

    def lines(self):
        return [f"{self.name} = {E.emit(self.node, SCAL[self.ty])}"]

    def run(self, env, state):
        env[self.name] = ev(self.node, env, rt(self.ty))


class Bind:
    """Value of an inline leaf (``v[1]``, ``float(k)``, ``wkf_kernel_f(x, 2.0)``); no source line of its own."""

    def __init__(self, text, fn, call=None):
        self.text, self.fn, self.call = text, fn, call

    def lines(self):
        return []

    def run(self, env, state):
        env[self.text] = Lazy(self.fn)


class Line:
    """A source line with a NumPy action (vector constructions, loads)."""

    def __init__(self, text, name, fn):
        self.text, self.name, self.fn = text, name, fn

    def lines(self):
        return [self.text]

    def run(self, env, state):
        env[self.name] = self.fn(env)


class CallStmt:
    """``t0, t1 = helper(args)`` or ``t = helper(args)``."""

    def __init__(self, targets, call):
        self.targets, self.call = targets, call

    def lines(self):
        return [f"{', '.join(self.targets)} = {self.call.text()}"]

    def run(self, env, state):
        values = self.call.evaluate(env)
        for t, v in zip(self.targets, values):
            env[t] = v


class IfSet:
    """``if cond: name = node`` (name already defined)."""

    def __init__(self, cond, name, node, ty):
        self.cond, self.name, self.node, self.ty = cond, name, node, ty

    def lines(self):
        ty = SCAL[self.ty]
        return [f"if {E.emit_cond(self.cond, ty)}:", f"    {self.name} = {E.emit(self.node, ty)}"]

    def run(self, env, state):
        ty = rt(self.ty)
        c = evc(self.cond, env, ty)
        env[self.name] = np.where(c, ev(self.node, env, ty), env[self.name])


class EarlyReturn:
    def __init__(self, cond, node, ty):
        self.cond, self.node, self.ty = cond, node, ty

    def lines(self):
        ty = SCAL[self.ty]
        return [f"if {E.emit_cond(self.cond, ty)}:", f"    return {E.emit(self.node, ty)}"]

    def run(self, env, state):
        ty = rt(self.ty)
        c = np.asarray(evc(self.cond, env, ty)) & ~state["done"]
        state["result"][0] = np.where(c, ev(self.node, env, ty), state["result"][0])
        state["done"] = state["done"] | c


class LoopAcc:
    """``acc = 0; for j in range(count): acc = acc + node`` (node may use the loop index)."""

    def __init__(self, acc, var, count, node, ty, op):
        self.acc, self.var, self.count, self.node, self.ty, self.op = acc, var, count, node, ty, op

    def lines(self):
        ty = SCAL[self.ty]
        e = E.emit(self.node, ty)
        upd = {"add": f"{self.acc} += {e}", "sub": f"{self.acc} -= {e}",
               "max": f"{self.acc} = wp.max({self.acc}, {e})"}[self.op]
        return [f"{self.acc} = {ZERO[self.ty]}", f"for {self.var} in range({self.count}):", f"    {upd}"]

    def run(self, env, state):
        ty = rt(self.ty)
        acc = _val(0, self.ty)
        for j in range(self.count):
            env[self.var] = np.asarray(j, dtype=np.int64)
            env[_conv(self.var, "int32", self.ty)] = _val(j, self.ty)
            e = ev(self.node, env, ty)
            if self.op == "add":
                acc = acc + e
            elif self.op == "sub":
                acc = acc - e
            else:
                acc = np.maximum(acc, e)
            if self.ty == "int32":
                acc = E._wrap32(acc)
        env[self.acc] = acc


class Return:
    def __init__(self, parts):
        self.parts = parts            # [(text, fn)]

    def lines(self):
        return [f"return {', '.join(t for t, _ in self.parts)}"]

    def run(self, env, state):
        values = [f(env) for _, f in self.parts]
        if state["result"] and state["result"][0] is not None:      # merge with early returns
            values[0] = np.where(state["done"], state["result"][0], values[0])
        state["final"] = values


class Write:
    def __init__(self, out, text, fn):
        self.out, self.text, self.fn = out, text, fn

    def lines(self):
        return [f"{self.out}[i] = {self.text}"]

    def run(self, env, state):
        state["outputs"][self.out] = self.fn(env)


def run_body(stmts, env, n_results=1):
    state = {"done": np.zeros((), dtype=bool), "result": [None] * n_results, "final": None}
    if any(isinstance(s, EarlyReturn) for s in stmts):
        state["result"] = [np.zeros(())] + [None] * (n_results - 1)
    for s in stmts:
        s.run(env, state)
    return state["final"]


# --------------------------------------------------------------------------------------------------------
# Helpers


class Helper:
    """A concrete @wp.func: typed parameters (name, type, domain interval), body statements, return types."""

    def __init__(self, name, params, rets, body, annotate):
        self.name, self.params, self.rets, self.body, self.annotate = name, params, rets, body, annotate

    def source(self):
        sig = ", ".join(f"{p}: {SPELL[t]}" for p, t, _ in self.params)
        ret = ""
        if self.annotate:
            spelled = [SPELL[t] for t, _ in self.rets]
            ret = f" -> {spelled[0]}" if len(spelled) == 1 else f" -> tuple[{', '.join(spelled)}]"
        lines = ["@wp.func", f"def {self.name}({sig}){ret}:"]
        for s in self.body:
            lines += ["    " + x for x in s.lines()]
        return "\n".join(lines)

    def evaluate(self, args):
        env = Env({p: a for (p, _, _), a in zip(self.params, args)})
        return run_body(self.body, env, len(self.rets))


class Generic:
    """A @wp.func with ``Any`` parameters: a tree over parameters ``a, b`` (same type T) and a scalar ``s``
    (the component type of T). ``GEN_OPS`` are valid for int, float32, float64 and vec3 alike."""

    def __init__(self, name, params, tree, local):
        self.name, self.params, self.tree, self.local = name, params, tree, local

    def source(self):
        sig = ", ".join(f"{p}: Any" for p in self.params)
        lines = ["@wp.func", f"def {self.name}({sig}):"]
        if self.local:
            lines.append(f"    {self.local[0]} = {gen_emit(self.local[1])}")
        lines.append(f"    return {gen_emit(self.tree)}")
        return "\n".join(lines)

    def evaluate(self, args, ty):
        env = Env(zip(self.params, args))
        if self.local:
            env[self.local[0]] = gen_eval(self.local[1], env, ty)
        return [gen_eval(self.tree, env, ty)]

    def bound(self, ivs):
        """Magnitude bound of the result given magnitude bounds of the arguments."""
        env = dict(zip(self.params, ivs))
        if self.local:
            env[self.local[0]] = gen_bound(self.local[1], env)
        return gen_bound(self.tree, env)


def gen_emit(t):
    op = t[0]
    if op == "p":
        return t[1]
    if op == "neg":
        return f"(-{gen_emit(t[1])})"
    if op == "abs":
        return f"wp.abs({gen_emit(t[1])})"
    if op == "scale":
        return f"({gen_emit(t[1])} * s)"
    if op in ("min", "max"):
        return f"wp.{op}({gen_emit(t[1])}, {gen_emit(t[2])})"
    return f"({gen_emit(t[1])} {'+' if op == 'add' else '-'} {gen_emit(t[2])})"


def gen_eval(t, env, ty):
    op = t[0]
    wrap = E._wrap32 if ty == "int32" else (lambda x: x)
    if op == "p":
        return env[t[1]]
    x = gen_eval(t[1], env, ty)
    if op == "neg":
        return wrap(-x)
    if op == "abs":
        return wrap(np.abs(x))
    if op == "scale":
        s = np.asarray(env["s"])
        return wrap(x * (s[..., None] if np.ndim(x) > np.ndim(s) else s))
    y = gen_eval(t[2], env, ty)
    if op == "min":
        return np.minimum(x, y)
    if op == "max":
        return np.maximum(x, y)
    return wrap(x + y if op == "add" else x - y)


def gen_bound(t, env):
    op = t[0]
    if op == "p":
        return env[t[1]]
    x = gen_bound(t[1], env)
    if op in ("neg", "abs"):
        return x
    if op == "scale":
        return x * env["s"]
    y = gen_bound(t[2], env)
    return max(x, y) if op in ("min", "max") else x + y


def gen_uses(t) -> set:
    if t[0] == "p":
        return {t[1]}
    out = set()
    for c in t[1:]:
        out |= gen_uses(c)
    return out


class Call:
    """One call site: helper, argument texts and their NumPy evaluators."""

    def __init__(self, helper, args, ty=None):
        self.helper, self.args, self.ty = helper, args, ty      # args: [(text, fn)]

    def text(self):
        return f"{self.helper.name}({', '.join(t for t, _ in self.args)})"

    def evaluate(self, env):
        values = [f(env) for _, f in self.args]
        if isinstance(self.helper, Generic):
            return self.helper.evaluate(values, self.ty)
        return self.helper.evaluate(values)


def _node_fn(node, ty):
    return lambda env, node=node, ty=ty: ev(node, env, rt(ty))


# --------------------------------------------------------------------------------------------------------
# Generation


class Scope:
    """Leaves available to expressions, by type: name -> Interval (vec3: component interval)."""

    def __init__(self):
        self.leaves = {"float32": {}, "float64": {}, "int32": {}, "vec3": {}}

    def copy(self):
        s = Scope()
        s.leaves = {k: dict(v) for k, v in self.leaves.items()}
        return s


class Gen:
    def __init__(self, rng):
        self.rng = rng
        self.helpers: list = []          # in definition order (callees first)
        self.groups: dict[str, list] = {}   # name -> overloads
        self.used_names: set = set()
        self.counter = 0
        self.uses_any = False
        self.building: set = set()       # helper names whose body is being generated (no self-calls)
        self.features = {"overloads": 0, "generic": 0, "tuple": 0, "vec": 0, "early_return": 0, "loop": 0,
                         "nested_calls": 0, "inline_calls": 0, "if": 0}

    def fresh(self, base):
        self.counter += 1
        return f"{base}{self.counter}"

    def helper_name(self):
        for _ in range(50):
            name = f"wkf_kernel_{pick(self.rng, HELPER_WORDS)}"
            if name not in self.groups and name not in self.building:
                return name
        return f"wkf_kernel_h{self.counter}"

    def egen(self, leaves, ty):
        binary = ("add", "sub", "mul", "div", "min", "max") + (("mod", "floordiv") if ty == "int32" else ())
        return E.ExprGen(self.rng, SCAL[ty], dict(leaves), binary=binary, p_const=0.2)

    # ---- argument expressions

    def arg_node(self, scope, ty, domain=None, depth=None, avoid=()):
        """An expression of type ty from the scope (clamped into ``domain`` when it could leave it), using
        leaves other than ``avoid`` where the scope has any."""
        leaves = {k: v for k, v in scope.leaves[ty].items() if k not in avoid} or scope.leaves[ty]
        if not leaves:
            node = E.const(int(self.rng.integers(-5, 6)) if ty == "int32" else round(float(self.rng.uniform(-2, 2)), 2))
        else:
            gen = self.egen(leaves, ty)
            d = int(self.rng.integers(0, 3)) if depth is None else depth
            node = sanitize(gen.expr(d)) if d else gen.var_leaf()
            if node.op == "const":
                node = gen.var_leaf()
        if domain is not None and (node.iv.lo < domain.lo or node.iv.hi > domain.hi):
            lo, hi = domain.lo, domain.hi
            node = E.Node("clamp", (node, E.const(lo), E.const(hi)),
                          iv=E.Interval(max(lo, min(node.iv.lo, hi)), min(hi, max(node.iv.hi, lo))))
        return node

    def scalar_args(self, scope, tys):
        nodes, taken = [], set()
        for t in tys:
            nodes.append(self.arg_node(scope, t, avoid=taken))
            taken |= E.uses(nodes[-1])
        # at least one argument is not a literal
        if all(n.op == "const" for n in nodes) and scope.leaves[tys[0]]:
            nodes[0] = self.egen(scope.leaves[tys[0]], tys[0]).var_leaf()
        return nodes

    # ---- helper creation

    def new_scalar_helper(self, name, tys, arg_ivs, depth, ret_ty=None, n_ret=1):
        """A helper over scalar params ``tys`` whose domains are ``arg_ivs``; body of type ret_ty."""
        self.building.add(name)
        try:
            return self._new_scalar_helper(name, tys, arg_ivs, depth, ret_ty, n_ret)
        finally:
            self.building.discard(name)

    def _new_scalar_helper(self, name, tys, arg_ivs, depth, ret_ty, n_ret):
        rng = self.rng
        ty = ret_ty or tys[0]
        pnames = pick(rng, PARAM_NAMES, len(tys))
        params = []
        scope = Scope()
        for p, t, iv in zip(pnames, tys, arg_ivs):
            if iv.hi - iv.lo < 1e-6:
                iv = E.Interval(iv.lo - 1.0, iv.hi + 1.0)
            params.append((p, t, iv))
            scope.leaves[t][p] = iv
            if t != ty and t == "int32":
                text = _conv(p, "int32", ty)
                scope.leaves[ty][text] = iv
        body: list = []
        for p, t, iv in params:
            if t == "int32" and ty != "int32":
                text = _conv(p, "int32", ty)
                body.append(Bind(text, lambda env, p=p, ty=ty: _val(env[p], ty)))
        leaves = scope.leaves[ty]
        # locals
        for _ in range(int(rng.integers(0, 3))):
            name_l = self.fresh(pick(rng, LOCAL_NAMES))
            node = self.expr(leaves, ty, int(rng.integers(1, 3)))
            body.append(Assign(name_l, node, ty))
            leaves[name_l] = node.iv
        # a call to another helper of the same type
        if depth < MAX_DEPTH and rng.random() < 0.45:
            self.features["nested_calls"] += 1
            self.call_into(body, scope, ty, depth + 1, inline_ok=True)
        # an accumulation loop
        if rng.random() < 0.3:
            self.features["loop"] += 1
            acc = self.fresh(pick(rng, ("acc", "total", "sum_", "run")))
            var = pick(rng, ("j", "k", "l", "jj"))
            count = int(rng.integers(2, 7))
            inner = dict(leaves)
            jt = _conv(var, "int32", ty)
            inner[jt] = E.Interval(0.0, float(count - 1))
            node = self.expr(inner, ty, int(rng.integers(1, 3)), must=[jt] if rng.random() < 0.7 else [])
            if ty == "int32" and node.iv.mag * count > E.INT32_LIMIT / 8:
                node = E.Node("add", (E.var(jt, inner[jt]), E.const(1)), iv=E.Interval(1, count))
            op = pick(rng, ("add", "add", "sub", "max"))
            body.append(LoopAcc(acc, var, count, node, ty, op))
            if op == "max":
                iv = E.Interval(max(0.0, node.iv.lo), max(0.0, node.iv.hi))
            else:
                m = node.iv.mag * count
                iv = E.Interval(-m, m)
            leaves[acc] = iv
        # a conditional update
        if rng.random() < 0.35 and leaves:
            self.features["if"] += 1
            target = pick(rng, [k for k in leaves if k.isidentifier() and k not in {p for p, _, _ in params}]
                          or [None])
            if target is None:
                target = self.fresh(pick(rng, LOCAL_NAMES))
                node0 = self.expr(leaves, ty, 1)
                body.append(Assign(target, node0, ty))
                leaves[target] = node0.iv
            cond = self.condition(leaves, ty)
            node = self.expr(leaves, ty, int(rng.integers(1, 3)))
            body.append(IfSet(cond, target, node, ty))
            old = leaves[target]
            leaves[target] = E.Interval(min(old.lo, node.iv.lo), max(old.hi, node.iv.hi))
        # an early return
        early = None
        if n_ret == 1 and rng.random() < 0.25:
            self.features["early_return"] += 1
            cond = self.condition(leaves, ty)
            node = self.expr(leaves, ty, int(rng.integers(1, 3)))
            body.append(EarlyReturn(cond, node, ty))
            early = node.iv
        # returns: every param and local reaches some return value
        must = [p for p, t, _ in params if t == ty] + [k for k in leaves if k not in {p for p, _, _ in params}
                                                       and not k.startswith(("float(", "wp.float64("))]
        must += [_conv(p, "int32", ty) for p, t, _ in params if t == "int32" and ty != "int32"]
        parts, rets = [], []
        for r in range(n_ret):
            mine = must if r == n_ret - 1 else [m for m in must if rng.random() < 0.5]
            node = self.expr(leaves, ty, int(rng.integers(1, 3)), must=mine)
            must = [m for m in must if m not in E.uses(node)] if r < n_ret - 1 else must
            parts.append((E.emit(node, SCAL[ty]), _node_fn(node, ty)))
            iv = node.iv
            if r == 0 and early is not None:
                iv = E.Interval(min(iv.lo, early.lo), max(iv.hi, early.hi))
            rets.append((ty, iv))
        body.append(Return(parts))
        h = Helper(name, params, rets, body, annotate=rng.random() < 0.6)
        self.register(h)
        return h

    def new_vec_helper(self, name, kinds, arg_ivs, depth, scalar_result=False):
        """float32 helpers with vec3 parameters (-> float) or scalar parameters (-> wp.vec3)."""
        rng = self.rng
        self.features["vec"] += 1
        params, body = [], []
        scope = Scope()
        vnames = pick(rng, VEC_PARAMS, 3)
        snames = pick(rng, PARAM_NAMES, 3)
        for k, (t, iv) in enumerate(zip(kinds, arg_ivs)):
            p = vnames[k] if t == "vec3" else snames[k]
            params.append((p, t, iv))
            scope.leaves[t][p] = iv
        fl = scope.leaves["float32"]
        vecs = [p for p, t, _ in params if t == "vec3"]
        returns_vec = not vecs or (not scalar_result and rng.random() < 0.3)
        for v in vecs:
            m = scope.leaves["vec3"][v].mag
            for text, fn, iv in self.vec_leaves(v, m, vecs, scope):
                body.append(Bind(text, fn))
                fl[text] = iv
        for _ in range(int(rng.integers(0, 3))):
            name_l = self.fresh(pick(rng, LOCAL_NAMES))
            node = self.expr(fl, "float32", int(rng.integers(1, 3)))
            body.append(Assign(name_l, node, "float32"))
            fl[name_l] = node.iv
        must = [k for k in fl if k in {p for p, _, _ in params}]
        if returns_vec:
            comps = [self.expr(fl, "float32", int(rng.integers(0, 3))) for _ in range(3)]
            used = set().union(*(E.uses(c) for c in comps))
            missing = [m for m in must if m not in used]
            if missing:
                comps[0] = self.expr(fl, "float32", 1, must=missing)
            form = int(rng.integers(3)) if vecs else 0
            ctext = f"wp.vec3({', '.join(E.emit(c, E.FLOAT32) for c in comps)})"
            cfn = lambda env, cs=comps: np.stack(np.broadcast_arrays(  # noqa: E731
                *[ev(c, env, rt("float32")) for c in cs]), -1)
            mag = max(c.iv.mag for c in comps)
            if form == 0:
                parts = [(ctext, cfn)]
            elif form == 1:
                v = pick(rng, vecs)
                s = comps[0]
                text = f"{v} * {E.emit(s, E.FLOAT32)} + {ctext}"
                fn = lambda env, v=v, s=s, cfn=cfn: env[v] * _col(ev(s, env, rt("float32"))) + cfn(env)  # noqa: E731
                mag = scope.leaves["vec3"][v].mag * s.iv.mag + mag
                parts = [(text, fn)]
            else:
                v = pick(rng, vecs)
                text = f"wp.cross({v}, {ctext})"
                fn = lambda env, v=v, cfn=cfn: np.cross(env[v], cfn(env))  # noqa: E731
                mag = 2 * scope.leaves["vec3"][v].mag * mag
                parts = [(text, fn)]
            rets = [("vec3", E.Interval(-mag, mag))]
        else:
            node = self.expr(fl, "float32", int(rng.integers(1, 4)), must=must or [next(iter(fl))])
            parts = [(E.emit(node, E.FLOAT32), _node_fn(node, "float32"))]
            rets = [("float32", node.iv)]
        body.append(Return(parts))
        h = Helper(name, params, rets, body, annotate=rng.random() < 0.6)
        self.register(h)
        return h

    def vec_leaves(self, v, m, vecs, scope):
        """Scalar leaves derived from vec3 value ``v`` (component bound m)."""
        rng = self.rng
        out = []
        for k in pick(rng, [0, 1, 2], int(rng.integers(1, 3))):
            out.append((f"{v}[{k}]", lambda env, v=v, k=k: env[v][..., k], E.Interval(-m, m)))
        others = [w for w in vecs if w != v]
        r = rng.random()
        if others and r < 0.6:
            w = pick(rng, others)
            mw = scope.leaves["vec3"][w].mag
            out.append((f"wp.dot({v}, {w})", lambda env, v=v, w=w: np.sum(env[v] * env[w], -1),
                        E.Interval(-3 * m * mw, 3 * m * mw)))
        elif r < 0.8:
            out.append((f"wp.length_sq({v})", lambda env, v=v: np.sum(env[v] ** 2, -1), E.Interval(0.0, 3 * m * m)))
        else:
            out.append((f"wp.length({v})", lambda env, v=v: np.sqrt(np.sum(env[v] ** 2, -1)),
                        E.Interval(0.0, np.sqrt(3.0) * m)))
        return out

    def new_generic(self, name):
        rng = self.rng
        self.uses_any = True
        self.features["generic"] += 1
        use_s = rng.random() < 0.6
        params = ["a", "b"] + (["s"] if use_s else [])

        def tree(depth):
            if depth == 0 or rng.random() < 0.25:
                return ("p", pick(rng, ("a", "b")))
            op = pick(rng, GEN_OPS if use_s else GEN_OPS[:-1])
            if op in ("neg", "abs", "scale"):
                return (op, tree(depth - 1))
            x, y = tree(depth - 1), tree(depth - 1)
            if x == y:
                y = ("p", "b" if x != ("p", "b") else "a")
            return (op, x, y)

        local = None
        t = tree(int(rng.integers(2, 4)))
        if rng.random() < 0.4:
            local = (pick(rng, ("t", "m", "d")), t)
            t = (pick(rng, ("add", "sub", "max", "min")), ("p", local[0]), tree(1))
        uses = gen_uses(t) | (gen_uses(local[1]) if local else set())
        if local:
            uses.discard(local[0])
        for p in ("a", "b"):
            if p not in uses:
                t = ("add", t, ("p", p))
        if use_s and not _has_scale(t) and not (local and _has_scale(local[1])):
            t = ("scale", t)
        h = Generic(name, params, t, local)
        self.register(h)
        return h

    def register(self, h):
        self.helpers.append(h)
        self.groups.setdefault(h.name, []).append(h)

    # ---- expressions

    def expr(self, leaves, ty, depth, must=()):
        gen = self.egen(leaves, ty)
        node = sanitize(gen.expr(depth))
        if node.op in ("const", "var") and leaves:
            node = sanitize(gen.apply_binary(pick(self.rng, ("add", "mul", "sub")), node, gen.expr(1)))
        return fold_in(gen, self.rng, node, must, leaves)

    def condition(self, leaves, ty):
        """A comparison whose sides differ and that can go both ways (by intervals)."""
        gen = self.egen(leaves, ty)
        for _ in range(8):
            c = sanitize_cond(gen.condition(2))
            if _sane_cond(c):
                return c
        x = gen.var_leaf()          # fallback: a leaf against a literal inside its range
        mid = x.iv.lo + (x.iv.hi - x.iv.lo) * float(self.rng.uniform(0.3, 0.7))
        mid = int(round(mid)) if ty == "int32" else round(mid, 2)
        return E.Node(pick(self.rng, ("lt", "ge")), (x, E.const(mid)))

    # ---- calls

    def call_into(self, body, scope, ty, depth, inline_ok):
        """Add a call (new helper, existing helper, new overload, generic) producing values of type ty into
        ``scope``; returns the names/texts of the new leaves."""
        rng = self.rng
        existing = [h for h in self.helpers if _callable_with(h, ty, scope) and h.name not in self.building]
        concrete = any(isinstance(h, Helper) for h in self.helpers)
        can_vec = ty == "float32" and bool(scope.leaves["vec3"]) and depth <= 1
        # what to call: weights depend on what exists already (overloads need a concrete helper first)
        options = {"new": 0.45, "generic": 0.2, "vec": 0.2 if can_vec else 0.0}
        if concrete:
            options.update({"existing": 0.25 if existing else 0.0, "overload": 0.3 if depth <= 1 else 0.0,
                            "new": 0.25, "generic": 0.15})
        keys = [k for k, w in options.items() if w > 0]
        weights = np.array([options[k] for k in keys])
        choice = keys[int(rng.choice(len(keys), p=weights / weights.sum()))]
        if choice == "existing":
            return self.emit_call(body, scope, pick(rng, existing), ty, inline_ok)
        if choice == "overload":
            h = self.make_overload(scope, ty, depth)
            if h is not None:
                return self.emit_call(body, scope, h, ty, inline_ok)
        if choice == "generic":
            name = next((n for n, g in self.groups.items() if isinstance(g[0], Generic)), None)
            h = self.groups[name][0] if name else self.new_generic(self.helper_name())
            return self.emit_call(body, scope, h, ty, inline_ok)
        if choice == "vec":
            vecs = list(scope.leaves["vec3"])
            n_v = 1 if len(vecs) == 1 or rng.random() < 0.5 else 2
            kinds = ["vec3"] * n_v + (["float32"] if rng.random() < 0.4 else [])
            ivs = [self.arg_iv(scope, k) for k in kinds]
            h = self.new_vec_helper(self.helper_name(), kinds, ivs, depth)
            return self.emit_call(body, scope, h, ty, inline_ok, ivs=ivs)
        # a new scalar helper
        n_par = int(rng.integers(1, 4))
        tys = [ty] * n_par
        if ty != "int32" and scope.leaves["int32"] and rng.random() < 0.25:
            tys[-1] = "int32"
        n_ret = 1 if rng.random() < 0.7 else int(rng.integers(2, 4))
        nodes = self.scalar_args(scope, tys)
        h = self.new_scalar_helper(self.helper_name(), tys, [n.iv for n in nodes], depth, ty, n_ret)
        if n_ret > 1:
            self.features["tuple"] += 1
        return self.emit_call(body, scope, h, ty, inline_ok, nodes=nodes)

    def arg_iv(self, scope, kind):
        leaves = scope.leaves[kind]
        if kind == "vec3":
            m = max(iv.mag for iv in leaves.values())
            return E.Interval(-m, m)
        return E.Interval(min(iv.lo for iv in leaves.values()), max(iv.hi for iv in leaves.values()))

    def make_overload(self, scope, ty, depth):
        """A second signature for an existing concrete helper name: other arity, or int / vec3 params."""
        rng = self.rng
        names = [n for n, g in self.groups.items() if isinstance(g[0], Helper) and len(g) < 3
                 and n not in self.building
                 and all(len(h.rets) == 1 and h.rets[0][0] in (ty, "int32") for h in g)]
        if not names:
            return None
        name = pick(rng, names)
        taken = {tuple(t for _, t, _ in h.params) for h in self.groups[name]}
        options = []
        base = [t for _, t, _ in self.groups[name][0].params]
        for n_par in (1, 2, 3):
            options.append(tuple([ty] * n_par))
        if scope.leaves["int32"] and ty != "int32":
            options += [("int32",), ("int32", "int32")]
        if ty == "float32" and scope.leaves["vec3"]:
            options += [("vec3",), ("vec3", "float32")]
        options = [o for o in options if o not in taken and o != tuple(base)]
        if not options:
            return None
        sig = pick(rng, options)
        self.features["overloads"] += 1
        if "vec3" in sig:
            ivs = [self.arg_iv(scope, k) for k in sig]
            return self.new_vec_helper(name, list(sig), ivs, depth, scalar_result=True)
        if sig[0] == "int32":
            nodes = self.scalar_args(scope, list(sig))
            return self.new_scalar_helper(name, list(sig), [n.iv for n in nodes], depth, "int32", 1)
        nodes = self.scalar_args(scope, list(sig))
        return self.new_scalar_helper(name, list(sig), [n.iv for n in nodes], depth, ty, 1)

    def emit_call(self, body, scope, h, ty, inline_ok, nodes=None, ivs=None):
        """Spell a call of h from ``scope`` (arguments clamped into h's domains); bind its results."""
        rng = self.rng
        if h is None:
            return []
        if isinstance(h, Generic):
            return self.emit_generic_call(body, scope, h, ty)
        args = []
        taken: set = set()
        for k, (p, t, dom) in enumerate(h.params):
            if t == "vec3":
                fits = [v for v, iv in scope.leaves["vec3"].items() if iv.mag <= dom.mag]
                vname = pick(rng, fits or list(scope.leaves["vec3"]))
                if not fits:                 # keep the helper's domain: scale the vector into it
                    f = round(dom.mag / scope.leaves["vec3"][vname].mag * 0.99, 4)
                    args.append((f"{vname} * {f!r}", lambda env, v=vname, f=f: env[v] * float(np.float32(f))))
                else:
                    args.append((vname, lambda env, v=vname: env[v]))
                continue
            node = nodes[k] if nodes is not None else self.arg_node(scope, t, dom, avoid=taken)
            for _ in range(4):
                if nodes is not None or E.emit(node, SCAL[t]) not in {a for a, _ in args}:
                    break
                node = self.arg_node(scope, t, dom, depth=2, avoid=taken)
            taken |= E.uses(node)
            if node.iv.lo < dom.lo or node.iv.hi > dom.hi:
                node = E.Node("clamp", (node, E.const(dom.lo if t != "int32" else int(dom.lo)),
                                        E.const(dom.hi if t != "int32" else int(dom.hi))), iv=dom)
            args.append((E.emit(node, SCAL[t]), _node_fn(node, t)))
        call = Call(h, args)
        rets = h.rets
        new = []
        single = len(rets) == 1
        if single and rets[0][0] == ty and inline_ok and len(call.text()) < 60 and rng.random() < 0.35:
            # the call spelled once inside an expression: name = expr (op) helper(args)
            rty, iv = rets[0]
            text = call.text()
            self.features["inline_calls"] += 1
            body.append(Bind(text, lambda env, c=call: c.evaluate(env)[0], call))
            leaves = scope.leaves[ty]
            gen = self.egen(leaves, ty)
            other = sanitize(gen.expr(int(rng.integers(0, 2)))) if leaves else gen.constant()
            node = gen.apply_binary(pick(rng, ("add", "sub", "mul", "add")), E.var(text, iv), other)
            if node.op not in ("add", "sub", "mul", "div", "min", "max") or text not in E.uses(node):
                node = E.Node("add", (E.var(text, iv), other), iv=E.Interval(iv.lo + other.iv.lo, iv.hi + other.iv.hi))
            name = self.fresh(pick(rng, LOCAL_NAMES))
            body.append(Assign(name, node, ty))
            leaves[name] = node.iv
            new.append((name, rty))
        else:
            targets = [self.fresh(pick(rng, LOCAL_NAMES)) for _ in rets]
            body.append(CallStmt(targets, call))
            for t, (rty, iv) in zip(targets, rets):
                scope.leaves[rty][t] = iv
                new.append((t, rty))
        out = []
        for text, rty in new:
            if rty == ty:
                out.append(text)
            elif rty == "vec3":
                for ltext, fn, iv in self.vec_leaves(text, iv_mag(scope.leaves["vec3"][text]), [text], scope):
                    body.append(Bind(ltext, fn))
                    scope.leaves[ty][ltext] = iv
                    out.append(ltext)
            elif rty == "int32" or (rty == "float64" and ty == "float32") or (rty == "float32" and ty == "float64"):
                conv = _conv(text, rty, ty)
                body.append(Bind(conv, lambda env, t=text, ty=ty: _val(env[t], ty)))
                scope.leaves[ty][conv] = scope.leaves[rty][text]
                out.append(conv)
        return out

    def emit_generic_call(self, body, scope, h, ty):
        rng = self.rng
        kinds = [ty]
        if ty == "float32":
            if scope.leaves["vec3"]:
                kinds.append("vec3")
            kinds.append("float64")
        if ty in ("float32", "float64") and len(scope.leaves["int32"]) > 1:
            kinds.append("int32")
        gty = pick(rng, kinds)
        args = []
        ivs = []
        taken: set = set()
        for p in h.params:
            if p == "s":
                sty = "float32" if gty == "vec3" else gty
                if gty == "int32":
                    c = int(rng.integers(-3, 4)) or 2
                    args.append((str(c), lambda env, c=c: np.asarray(c, dtype=np.int64)))
                    ivs.append(abs(c))
                else:
                    c = round(float(rng.uniform(-2.0, 2.0)), 2) or 0.5
                    lit = E.FLOAT64.literal(c) if sty == "float64" else repr(c)
                    val = c if sty == "float64" else float(np.float32(c))
                    args.append((lit, lambda env, v=val, sty=sty: _val(v, sty)))
                    ivs.append(abs(c))
                continue
            if gty == "vec3":
                free = [v for v in scope.leaves["vec3"] if v not in taken]
                vname = pick(rng, free or list(scope.leaves["vec3"]))
                taken.add(vname)
                if free:
                    args.append((vname, lambda env, v=vname: env[v]))
                    ivs.append(scope.leaves["vec3"][vname].mag)
                else:                    # the same vector again: scale it so the arguments differ
                    c = float(pick(rng, (0.5, -0.5, 1.5, -2.0, 0.25)))
                    args.append((f"{vname} * {c!r}", lambda env, v=vname, c=c: env[v] * c))
                    ivs.append(scope.leaves["vec3"][vname].mag * abs(c))
            elif gty == "float64" and ty == "float32":
                node = self.arg_node(scope, "float32", depth=int(rng.integers(0, 2)), avoid=taken)
                taken |= E.uses(node)
                fn = lambda env, f=_node_fn(node, "float32"): np.asarray(f(env), dtype=np.float64)  # noqa: E731
                args.append((f"wp.float64({E.emit(node, E.FLOAT32)})", fn))
                ivs.append(node.iv.mag)
            else:
                dom = E.Interval(-INT_DOMAIN, INT_DOMAIN) if gty == "int32" else None
                node = self.arg_node(scope, gty, dom, depth=int(rng.integers(0, 2)), avoid=taken)
                for _ in range(4):
                    if E.emit(node, SCAL[gty]) not in {t for t, _ in args}:
                        break
                    node = self.arg_node(scope, gty, dom, depth=2, avoid=taken)
                taken |= E.uses(node)
                args.append((E.emit(node, SCAL[gty]), _node_fn(node, gty)))
                ivs.append(node.iv.mag)
        call = Call(h, args, gty)
        bound = h.bound(ivs)
        target = self.fresh(pick(rng, LOCAL_NAMES))
        body.append(CallStmt([target], call))
        scope.leaves[gty][target] = E.Interval(-bound, bound)
        if gty == ty:
            return [target]
        if gty == "vec3":
            out = []
            for ltext, fn, iv in self.vec_leaves(target, bound, [target], scope):
                body.append(Bind(ltext, fn))
                scope.leaves[ty][ltext] = iv
                out.append(ltext)
            return out
        conv = _conv(target, gty, ty)
        body.append(Bind(conv, lambda env, t=target, ty=ty: _val(env[t], ty)))
        scope.leaves[ty][conv] = E.Interval(-bound, bound)
        return [conv]

    # ---- kernel

    def build(self) -> Program:
        rng = self.rng
        ty = pick(rng, ("float32", "float32", "float32", "float64", "int32"))
        self.ty = ty
        n = int(pick(rng, (32, 64)))
        args: list[Arg] = []
        body: list = []
        scope = Scope()
        n_in = int(rng.integers(1, 4))
        names = pick(rng, ARRAY_NAMES, n_in + 2)
        lo, hi = (-20, 20) if ty == "int32" else pick(rng, ((-2.0, 2.0), (-1.0, 3.0), (0.5, 4.0)))
        inputs = []
        inline = rng.random() < 0.35
        for nm in names[:n_in]:
            args.append(Arg(nm, ty, "in", (n,), lo, hi))
            leaf = f"{nm}[i]" if inline else (f"{nm}_v" if rng.random() < 0.5 else f"x{nm}")
            if inline:
                body.append(Bind(leaf, lambda env, nm=nm: env["@" + nm]))
            else:
                body.append(Line(f"{leaf} = {nm}[i]", leaf, lambda env, nm=nm: env["@" + nm]))
            scope.leaves[ty][leaf] = E.Interval(lo, hi)
            inputs.append(leaf)
        if ty != "int32":
            # a small int from the thread index (int values are not perturbed by the conditioning check,
            # so they stay small: no float32 cancellation hidden behind them)
            m = int(rng.integers(3, 9))
            lane = pick(rng, ("lane", "slot", "phase", "kk", "sub", "bucket"))
            if rng.random() < 0.5:
                body.append(Line(f"{lane} = i % {m}", lane, lambda env, m=m: env["i"] % m))
                scope.leaves["int32"][lane] = E.Interval(0, m - 1)
            else:
                c = m // 2
                body.append(Line(f"{lane} = i % {m} - {c}", lane, lambda env, m=m, c=c: env["i"] % m - c))
                scope.leaves["int32"][lane] = E.Interval(-c, m - 1 - c)
            if rng.random() < 0.3:
                nm = names[n_in]
                args.append(Arg(nm, "int32", "in", (n,), -8, 8))
                leaf = f"{nm}[i]"
                body.append(Bind(leaf, lambda env, nm=nm: env["@" + nm]))
                scope.leaves["int32"][leaf] = E.Interval(-8, 8)
                inputs.append(leaf)
        if ty == "float32" and rng.random() < 0.4:
            nm = names[n_in + 1]
            args.append(Arg(nm, "vec3f", "in", (n,), -1.0, 1.0))
            leaf = f"{nm}_v"
            body.append(Line(f"{leaf} = {nm}[i]", leaf, lambda env, nm=nm: env["@" + nm]))
            scope.leaves["vec3"][leaf] = E.Interval(-1.0, 1.0)
            inputs.append(leaf)
            if rng.random() < 0.5:
                comps = [self.arg_node(scope, "float32", depth=int(rng.integers(0, 2))) for _ in range(3)]
                vname = self.fresh("vv")
                text = f"{vname} = wp.vec3({', '.join(E.emit(c, E.FLOAT32) for c in comps)})"
                body.append(Line(text, vname, lambda env, cs=comps: np.stack(
                    [np.broadcast_to(ev(c, env, rt("float32")), (n,)) for c in cs], -1)))
                scope.leaves["vec3"][vname] = E.Interval(-max(c.iv.mag for c in comps), max(c.iv.mag for c in comps))
        # calls
        results = []
        for _ in range(int(rng.integers(2, 5))):
            results += self.call_into(body, scope, ty, 1, inline_ok=True)
            if rng.random() < 0.3:
                name_l = self.fresh(pick(rng, LOCAL_NAMES))
                node = self.expr(scope.leaves[ty], ty, int(rng.integers(1, 3)))
                body.append(Assign(name_l, node, ty))
                scope.leaves[ty][name_l] = node.iv
                results.append(name_l)
        # every concrete helper is reached: call those no one calls yet from the kernel
        called = self.called_helpers(body)
        for h in list(self.helpers):
            if id(h) not in called:
                if isinstance(h, Generic):
                    results += self.emit_generic_call(body, scope, h, ty)
                elif all(scope.leaves[t] for _, t, _ in h.params):
                    results += self.emit_call(body, scope, h, ty, inline_ok=False)
                called = self.called_helpers(body)
        dead = [h for h in self.helpers if id(h) not in called]
        for h in dead:               # could not be called with what the kernel has: drop it
            self.helpers.remove(h)
            self.groups[h.name].remove(h)
        # outputs: every input, call result and local reaches one (derived scalars stand in for vectors/ints)
        outs = pick(rng, OUT_NAMES, 2)
        n_out = 1 if rng.random() < 0.6 else 2
        leaves = scope.leaves[ty]
        vec_write = None
        vec_results = [v for v in scope.leaves["vec3"] if v not in inputs]
        if ty == "float32" and vec_results and rng.random() < 0.5:
            v = pick(rng, vec_results)
            sc = pick(rng, [x for x in inputs if x in leaves] or list(leaves))
            vec_write = Write("out_v", f"{v} * {sc}", lambda env, v=v, s=sc: env[v] * _col(env[s]))
        text = "\n".join([x for st in body for x in st.lines()] + ([vec_write.lines()[0]] if vec_write else []))
        defined = {t for st in body for t in _defines(st)}
        roots = list(dict.fromkeys(inputs + results + [t for st in body for t in _defines(st)]))
        pending = []
        for r in roots:
            if _count(r, text) > (1 if r in defined else 0):
                continue
            kind = next((k for k in scope.leaves if r in scope.leaves[k]), None)
            if kind == ty:
                pending.append(r)
            elif kind == "vec3":
                for ltext, fn, iv in self.vec_leaves(r, scope.leaves["vec3"][r].mag, [r], scope)[-1:]:
                    body.append(Bind(ltext, fn))
                    leaves[ltext] = iv
                    pending.append(ltext)
            elif kind is not None and ty != "int32":
                conv = _conv(r, kind, ty)
                if conv not in leaves:
                    body.append(Bind(conv, lambda env, t=r, ty=ty: _val(env[t], ty)))
                    leaves[conv] = scope.leaves[kind][r]
                pending.append(conv)
        for k in range(n_out):
            if k == n_out - 1:
                must = pending
            else:
                must = pending[: len(pending) // 2]
            node = self.expr(leaves, ty, int(rng.integers(1, 3)), must=must)
            used = E.uses(node)
            pending = [p for p in pending if p not in used]
            args.append(Arg(outs[k], ty, "out", (n,)))
            body.append(Write(outs[k], E.emit(node, SCAL[ty]), _node_fn(node, ty)))
        if vec_write is not None:
            args.append(Arg("out_v", "vec3f", "out", (n,)))
            body.append(vec_write)
        return self.program(args, body, n)

    def called_helpers(self, body) -> set:
        seen = set()

        def visit(stmts):
            for st in stmts:
                call = getattr(st, "call", None)
                if isinstance(call, Call) and id(call.helper) not in seen:
                    seen.add(id(call.helper))
                    if isinstance(call.helper, Helper):
                        visit(call.helper.body)

        visit(body)
        return seen

    def program(self, args, body, n):
        sig = ", ".join(f"{a.name}: {ARR_SPELL['vec3' if a.dtype == 'vec3f' else a.dtype]}" for a in args)
        source = kernel_text(sig, [x for s in body for x in s.lines()], [h.source() for h in self.helpers],
                             imports=("from typing import Any",) if self.uses_any else ())
        feats = {"dtype": self.ty, "helpers": len(self.helpers),
                 "overload_sets": sum(1 for g in self.groups.values() if len(g) > 1)}
        feats.update({k: v for k, v in self.features.items()})
        meta = {"n": n, "body": body, "ty": self.ty,
                "inputs": [a.name for a in args if a.role == "in"],
                "outputs": [a.name for a in args if a.role == "out"]}
        return Program(source, tuple(args), (n,), meta, feats, differentiable=self.ty != "int32")


def _defines(st):
    if isinstance(st, (Assign, Line)):
        return [st.name]
    if isinstance(st, CallStmt):
        return list(st.targets)
    return []


def iv_mag(iv):
    return iv.mag


def _has_scale(t):
    return t[0] == "scale" or any(_has_scale(c) for c in t[1:] if isinstance(c, tuple))


def _callable_with(h, ty, scope):
    """Whether the scope has values for h's parameters and h's results convert to ty."""
    if isinstance(h, Generic):
        return True
    if any(not scope.leaves[t] for _, t, _ in h.params):
        return False
    if ty == "int32":
        return all(rt == "int32" for rt, _ in h.rets)
    return all(rt in ("float32", "float64", "int32") or (rt == "vec3" and ty == "float32") for rt, _ in h.rets)


def _col(x):
    x = np.asarray(x)
    return x[..., None] if x.ndim >= 1 else x


def generate(rng: np.random.Generator) -> Program:
    return Gen(rng).build()


def _run(spec: KernelSpec, inputs, emulate: bool):
    meta = spec.meta
    n = meta["n"]
    _EMULATE_F32[0] = emulate
    env = Env()
    for a in spec.args:
        if a.role == "in":
            kind = {"int32": "int32", "float64": "float64"}.get(a.dtype, "float32")
            env["@" + a.name] = _val(inputs[a.name], kind)
    env["i"] = np.arange(n, dtype=np.int64)
    state = {"outputs": {}, "done": np.zeros((), dtype=bool), "result": [None], "final": None}
    _FRAGILE[0] = None if emulate else np.zeros(n, dtype=bool)
    try:
        with np.errstate(all="ignore"):
            for s in meta["body"]:
                s.run(env, state)
        fragile = _FRAGILE[0]
    finally:
        _FRAGILE[0] = None
        _EMULATE_F32[0] = False
    out = {}
    for a in spec.args:
        if a.role == "out":
            shape = (n, 3) if a.dtype == "vec3f" else (n,)
            out[a.name] = np.broadcast_to(state["outputs"][a.name], shape).astype(
                np.int64 if a.dtype == "int32" else np.float64)
    return out, fragile


def reference(spec: KernelSpec, inputs) -> dict[str, np.ndarray]:
    n = spec.meta["n"]
    out, fragile = _run(spec, inputs, emulate=False)
    masks = {}
    for a in spec.args:
        if a.role == "out":
            shape = out[a.name].shape
            masks[a.name] = np.broadcast_to(fragile.reshape((n,) + (1,) * (len(shape) - 1)), shape).copy()
    if spec.meta["ty"] == "float32":
        emu, _ = _run(spec, inputs, emulate=True)
        tol = tolerance(spec)
        for name, want in out.items():
            masks[name] |= emulation_moved(emu[name], want, tol)
    return {k: np.ma.masked_array(v, mask=masks[k]) if masks[k].any() else v for k, v in out.items()}


tolerance = type_tolerance


FAMILY = Family(
    name="funcs",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=reference,
    tolerance=tolerance,
    weight=1.0,
    covers=("wp.func", "overloads", "generic Any", "tuple returns", "vec3 returns", "nested helper calls",
            "early return", "helper loops"),
)
