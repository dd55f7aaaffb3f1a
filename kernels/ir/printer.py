"""The one printer: IR -> Warp Python source.

Expressions become standard-library ``ast`` nodes and are written by ``ast.unparse``, so parentheses are never
managed by hand. Statement lines that would pass :data:`WIDTH` characters are broken the way a person formats
them: inside the brackets of a call (one argument per line) or, for a long arithmetic/boolean chain, inside
one pair of parentheses with a line break before the operator (no formatter dependency: the rule is small and
the output stays byte-stable across tool versions).

Literals are typed as Warp needs: bare float literals are float32 and bare integers int32 inside Warp, so
other widths are written ``wp.float64(0.5)``, ``wp.int64(3)``; a local first bound to a literal is written
``wp.float32(0.0)`` so that Warp treats it as a variable it may reassign inside loops.
"""

from __future__ import annotations

import ast
from typing import Iterable

from harness.family import PLACEHOLDER
from kernels.ir import nodes as n
from kernels.ir.ops import op as lookup_op
from kernels.ir.types import BOOL, FLOAT32, FLOAT64, INT32, Array, Scalar, Struct, Transform, Type, scalar_of

WIDTH = 100
INDENT = "    "
#: characters a kernel's name may take once the harness renames it (``<family>_<6 hex digits>``): names that
#: start with the placeholder (the kernel's, and its helpers' ``wkf_kernel_f``) are measured at that length
KERNEL_NAME_ROOM = 32


def _width(text: str) -> int:
    """Length of ``text`` once the harness has renamed the placeholder in it."""
    return len(text) + text.count(PLACEHOLDER) * (KERNEL_NAME_ROOM - len(PLACEHOLDER))

_BINOPS = {"+": ast.Add, "-": ast.Sub, "*": ast.Mult, "/": ast.Div, "//": ast.FloorDiv, "%": ast.Mod,
           "&": ast.BitAnd, "|": ast.BitOr, "^": ast.BitXor, "<<": ast.LShift, ">>": ast.RShift, "**": ast.Pow,
           "@": ast.MatMult}
_CMPOPS = {"<": ast.Lt, "<=": ast.LtE, ">": ast.Gt, ">=": ast.GtE, "==": ast.Eq, "!=": ast.NotEq}
#: Python's precedence of binary operators (higher binds tighter)
_PREC = {ast.BitOr: 1, ast.BitXor: 2, ast.BitAnd: 3, ast.LShift: 4, ast.RShift: 4, ast.Add: 5, ast.Sub: 5,
         ast.Mult: 6, ast.Div: 6, ast.FloorDiv: 6, ast.Mod: 6, ast.MatMult: 6, ast.Pow: 7}


#: loop variables of the ``for`` loops being printed (see :func:`expr`'s float64 casts)
_LOOP_VARS: set[str] = set()


def _spelled(text: str) -> ast.expr:
    return ast.parse(text, mode="eval").body


def type_ast(ty: Type) -> ast.expr:
    return _spelled(ty.warp)


# ---------------------------------------------------------------------------------------------------------
# Expressions -> ast


def literal(value: float | int | bool, ty: Scalar) -> ast.expr:
    """A literal as Warp reads it with type ``ty`` (``ast.unparse`` writes negative constants as ``-1.5``)."""
    if ty == BOOL:
        return ast.Constant(bool(value))
    node = ast.Constant(int(value) if ty.is_int else float(value))
    return node if ty in (INT32, FLOAT32) else ast.Call(type_ast(ty), [node], [])


def expr(e: n.Expr) -> ast.expr:
    """The ``ast`` expression of an IR expression."""
    if isinstance(e, n.Const):
        return literal(e.value, e.type)
    if isinstance(e, n.Var):
        return ast.Name(e.name)
    if isinstance(e, n.Load):
        return ast.Subscript(ast.Name(e.array), _index(e.index))
    if isinstance(e, n.Cast):
        inner = expr(e.value)
        if e.type == FLOAT64 and isinstance(e.value, n.Var) and e.value.name in _LOOP_VARS:
            # Warp 1.19: wp.float64(j) of an unrolled loop index retypes j itself for the rest of the iteration
            inner = ast.Call(type_ast(e.value.type), [inner], [])
        return ast.Call(ast.Name(n.PYTHON_CASTS[e.type]) if e.python else type_ast(e.type), [inner], [])
    if isinstance(e, n.Component):
        return ast.Subscript(expr(e.value), ast.Constant(e.index))
    if isinstance(e, n.Attr):
        return ast.Attribute(expr(e.value), e.field)
    if isinstance(e, n.Element):
        return _element(expr(e.value), e.value.type, e.index, e.style)
    if isinstance(e, n.FuncCall):
        return ast.Call(ast.Name(e.func.name), [expr(a) for a in e.args], [])
    if isinstance(e, n.Call):
        return _call(e)
    if isinstance(e, n.ShapeOf):
        return ast.Subscript(ast.Attribute(ast.Name(e.array), "shape"), ast.Constant(e.dim))
    if isinstance(e, n.MakeTuple):
        return ast.Tuple([expr(v) for v in e.values])
    if isinstance(e, n.Static):
        return ast.Name(e.text) if e.bare else ast.Call(_spelled("wp.static"), [_spelled(e.text)], [])
    if isinstance(e, n.New):
        return ast.Call(ast.Name(e.struct.name), [expr(a) for a in e.args], [])
    if isinstance(e, n.FieldLoad):
        return ast.Subscript(ast.Attribute(expr(e.value), e.field), expr(e.index))
    raise TypeError(f"Expected an IR expression but got {type(e).__name__}")


def _element(value: ast.expr, ty: Type, index: tuple[int, ...], style: str) -> ast.expr:
    """``value[k]``, ``value.x``/``t.p``, ``value[i, j]`` or ``value[i][j]``."""
    if style == "attr":
        names = n.TRANSFORM_PARTS if isinstance(ty, Transform) else n.COMPONENT_NAMES
        return ast.Attribute(value, names[index[0]])
    if style == "chain":
        return ast.Subscript(ast.Subscript(value, ast.Constant(index[0])), ast.Constant(index[1]))
    key = ast.Constant(index[0]) if len(index) == 1 else ast.Tuple([ast.Constant(k) for k in index])
    return ast.Subscript(value, key)


def _index(index: tuple[n.Expr, ...]) -> ast.expr:
    return expr(index[0]) if len(index) == 1 else ast.Tuple([expr(i) for i in index])


def _reads_element(e: n.Expr) -> bool:
    """``a[i]``, ``s.f[i]``, ``a[i].x``, ``a[i][0]``: a reference in Warp's code generator, not a value."""
    while isinstance(e, (n.Attr, n.Component)):
        e = e.value
    return isinstance(e, (n.Load, n.FieldLoad))


def _call(e: n.Call) -> ast.expr:
    row = lookup_op(e.op)
    args = [expr(a) for a in e.args]
    if row.form == "binop":
        return ast.BinOp(args[0], _BINOPS[row.spelling](), args[1])
    if row.form == "unop":
        return ast.UnaryOp(ast.USub() if row.spelling == "-" else ast.Invert(), args[0])
    if row.form == "not":
        return ast.UnaryOp(ast.Not(), args[0])
    if row.form == "compare":
        return ast.Compare(args[0], [_CMPOPS[row.spelling]()], [args[1]])
    if row.form == "boolop":
        a, b = e.args
        compares = all(isinstance(x, n.Call) and lookup_op(x.op).form == "compare" for x in e.args)
        # lo <= k and k < hi prints as lo <= k < hi, unless hi reads an array element: Warp chains only operands
        # of one type, and an element read is a reference there (``Cannot chain comparisons of unequal types``)
        if (row.spelling == "and" and compares and a.args[1] == b.args[0]
                and not _reads_element(b.args[1])):
            left, right = args
            return ast.Compare(left.left, [*left.ops, *right.ops], [*left.comparators, *right.comparators])
        return ast.BoolOp(ast.And() if row.spelling == "and" else ast.Or(), args)
    if row.form == "ifexp":
        return ast.IfExp(args[0], args[1], args[2])
    if row.form == "construct":
        return ast.Call(type_ast(e.type), args, [])
    if row.form == "constant":                      # wp.pi, wp.identity(n=3, dtype=wp.float32)
        return _spelled(row.spelling.format(dtype=scalar_of(e.type).warp))
    return ast.Call(_spelled(row.spelling), args + [_spelled(t) for t in row.trailing], [])


# ---------------------------------------------------------------------------------------------------------
# IR statements -> ast statements


def _let_value(s: n.Let) -> ast.expr:
    if isinstance(s.value, n.Const) and s.value.type != BOOL:
        return ast.Call(type_ast(s.value.type), [ast.Constant(s.value.value)], [])
    return expr(s.value)


def stmt(s: n.Stmt) -> ast.stmt:
    if isinstance(s, n.Let):
        return ast.Assign([ast.Name(s.name)], _let_value(s), lineno=0)
    if isinstance(s, n.Assign) and s.augmented:
        op = _BINOPS[n.AUGMENTED[s.value.op]]()
        return ast.AugAssign(ast.Name(s.name), op, expr(s.value.args[1]), lineno=0)
    if isinstance(s, n.Assign):
        return ast.Assign([ast.Name(s.name)], expr(s.value), lineno=0)
    if isinstance(s, n.Store):
        return ast.Assign([ast.Subscript(ast.Name(s.array), _index(s.index))], expr(s.value), lineno=0)
    if isinstance(s, n.LetOut):
        call = _call(s.value)
        return ast.Assign([ast.Name(s.name)], ast.Call(call.func, [*call.args, ast.Name(s.out)], []), lineno=0)
    if isinstance(s, n.SetElement):
        return ast.Assign([_element(ast.Name(s.name), s.type, s.index, s.style)], expr(s.value), lineno=0)
    if isinstance(s, n.Atomic):
        if s.inplace:
            target = ast.Subscript(ast.Name(s.array), _index(s.index))
            return ast.AugAssign(target, _BINOPS[n.INPLACE_ATOMICS[s.kind]](), expr(s.value), lineno=0)
        fn = _spelled(f"wp.atomic_{s.kind}")
        extra = [expr(s.compare)] if s.compare is not None else []
        call = ast.Call(fn, [ast.Name(s.array), *map(expr, s.index), *extra, expr(s.value)], [])
        return ast.Assign([ast.Name(s.result)], call, lineno=0) if s.result else ast.Expr(call)
    if isinstance(s, n.If):
        return ast.If(expr(s.cond), _block(s.then), [stmt(x) for x in s.orelse])
    if isinstance(s, n.For):
        bounds = [expr(s.stop)] if s.start == n.Const(0, INT32) and s.step == 1 else [expr(s.start), expr(s.stop)]
        if s.step != 1:
            bounds.append(ast.Constant(s.step))
        outer = s.var in _LOOP_VARS
        _LOOP_VARS.add(s.var)
        try:
            body = _block(s.body)
        finally:
            if not outer:
                _LOOP_VARS.discard(s.var)
        return ast.For(ast.Name(s.var), ast.Call(ast.Name("range"), bounds, []), body, [], lineno=0)
    if isinstance(s, n.While):
        return ast.While(expr(s.cond), _block(s.body), [])
    if isinstance(s, n.Break):
        return ast.Break()
    if isinstance(s, n.Continue):
        return ast.Continue()
    if isinstance(s, n.Return):
        return ast.Return(expr(s.value) if s.value is not None else None)
    if isinstance(s, n.Unpack):
        return ast.Assign([ast.Tuple([ast.Name(x) for x in s.names])], expr(s.value), lineno=0)
    if isinstance(s, n.SetAttr) and s.augmented:
        op = _BINOPS[n.AUGMENTED[s.value.op]]()
        return ast.AugAssign(expr(s.target()), op, expr(s.value.args[1]), lineno=0)
    if isinstance(s, n.SetAttr):
        return ast.Assign([expr(s.target())], expr(s.value), lineno=0)
    raise TypeError(f"Expected an IR statement but got {type(s).__name__}")


def grid_query(s: n.GridQuery) -> list[ast.stmt]:
    """The statements of a hash-grid neighbour loop: one ``for``, or the query, the index and the ``while``."""
    query = ast.Call(_spelled("wp.hash_grid_query"), [expr(s.grid), expr(s.point), expr(s.radius)], [])
    if s.style == "for":
        return [ast.For(ast.Name(s.var), query, _block(s.body), [], lineno=0)]
    step = ast.Call(_spelled("wp.hash_grid_query_next"), [ast.Name(s.query), ast.Name(s.var)], [])
    return [ast.Assign([ast.Name(s.query)], query, lineno=0),
            ast.Assign([ast.Name(s.var)], _spelled("int(0)"), lineno=0),
            ast.While(step, _block(s.body), [])]


def tile_query(s: n.TileQuery) -> list[ast.stmt]:
    """The statements of a block-cooperative query: the query, the ``while wp.tile_query_valid`` loop, each
    thread's result (through a tile local in style ``tile``) and the guard of the body."""
    make, step = n.TILE_QUERIES[s.kind]
    query = ast.Call(_spelled(make), [expr(s.structure), expr(s.a), expr(s.b)], [])
    nxt = ast.Call(_spelled(step), [ast.Name(s.query)], [])
    if s.style == "tile":
        head = [ast.Assign([ast.Name(s.tile)], nxt, lineno=0),
                ast.Assign([ast.Name(s.var)], ast.Call(_spelled("wp.untile"), [ast.Name(s.tile)], []), lineno=0)]
    else:
        head = [ast.Assign([ast.Name(s.var)], ast.Call(_spelled("wp.untile"), [nxt], []), lineno=0)]
    guard = ast.If(ast.Compare(ast.Name(s.var), [ast.GtE()], [ast.Constant(0)]), _block(s.body), [])
    valid = ast.Call(_spelled("wp.tile_query_valid"), [ast.Name(s.query)], [])
    return [ast.Assign([ast.Name(s.query)], query, lineno=0), ast.While(valid, [*head, guard], [])]


def _block(body: Iterable[n.Stmt]) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for x in body:
        if isinstance(x, n.GridQuery):
            out += grid_query(x)
        elif isinstance(x, n.TileQuery):
            out += tile_query(x)
        else:
            out.append(stmt(x))
    return out or [ast.Pass()]


def _args(params: tuple[n.Param, ...], generic: tuple[str, ...] = ()) -> ast.arguments:
    """Parameters with their annotations; those named in ``generic`` as ``wp.array(dtype=Any)``."""
    return ast.arguments([], [ast.arg(p.name, _generic_array(p.type) if p.name in generic else type_ast(p.type))
                              for p in params], None, [], [], None, [])


def func_def(f: n.Func) -> ast.FunctionDef:
    if f.generic:               # ``typing.Any`` parameters, result type left to each instance
        args = ast.arguments([], [ast.arg(p.name, ast.Name("Any")) for p in f.params], None, [], [], None, [])
        return ast.FunctionDef(f.name, args, _block(f.body), [_spelled("wp.func")], None, lineno=0)
    return ast.FunctionDef(f.name, _args(f.params), _block(f.body), [_spelled("wp.func")], type_ast(f.ret),
                           lineno=0)


def factory_defs(f: n.Func) -> list[ast.stmt]:
    """A closure helper: the factory that defines it around its captured values, then the module's binding
    ``name = factory(values)``."""
    return _made_by(f.factory, func_def(n.Func(f.factory.inner, f.params, f.ret, f.body, f.generic)), f.name)


def _made_by(fac: n.Factory, inner: ast.FunctionDef, name: str) -> list[ast.stmt]:
    """``def <factory>(<captures>): <inner> return <inner>`` and the module's ``name = <factory>(values)``."""
    params = [ast.arg(cap, type_ast(c.type)) for cap, c in fac.captures]
    head = ast.FunctionDef(fac.name, ast.arguments([], params, None, [], [], None, []),
                           [inner, ast.Return(ast.Name(fac.inner))], [], None, lineno=0)
    bind = ast.Assign([ast.Name(name)], ast.Call(ast.Name(fac.name), [literal(c.value, c.type)
                                                                      for _, c in fac.captures], []), lineno=0)
    return [head, bind]


def _module_consts(kernels: list[n.Kernel]) -> list[tuple[str, float | int]]:
    """Module-level constants the kernels' ``wp.static`` expressions read, in first-use order."""
    from kernels.ir.analysis import expressions
    out: dict[str, float | int] = {}
    for k in kernels:
        for body in (k.body, *(f.body for f in k.funcs)):
            for x in expressions(body):
                if isinstance(x, n.Static):
                    out.update(x.consts)
    return list(out.items())


def kernel_def(k: n.Kernel, module: str | None = None) -> ast.FunctionDef:
    options = ([("module", module)] if module is not None else []) + list(k.options)
    deco = _spelled("wp.kernel") if not options else _spelled(
        "wp.kernel(" + ", ".join(f"{key}={value!r}" for key, value in options) + ")")
    tid_target = ast.Name(k.tids[0]) if len(k.tids) == 1 else ast.Tuple([ast.Name(t) for t in k.tids])
    tid = ast.Assign([tid_target], _spelled("wp.tid()"), lineno=0)
    name = k.factory.inner if k.factory is not None else k.name
    return ast.FunctionDef(name, _args(k.params, k.generic), [tid, *_block(k.body)], [deco], None, lineno=0)


def _generic_array(ty: Array) -> ast.expr:
    """``wp.array(dtype=Any)`` (with ``ndim``) for an array parameter of a generic kernel."""
    if not isinstance(ty, Array):
        raise TypeError(f"Expected an array parameter for a generic kernel but got {ty}")
    return _spelled(ty.warp.replace(f"dtype={ty.dtype.warp}", "dtype=Any", 1))


def kernel_defs(k: n.Kernel, module: str | None = None) -> list[ast.stmt]:
    """A kernel's definition; made by its factory (``def make(c): ... return kernel`` and the module's
    ``name = make(value)``) for a closure; followed by ``wp.overload(name, {param: concrete type})`` when
    generic."""
    defs: list[ast.stmt] = [kernel_def(k, module)]
    if k.factory is not None:
        defs = _made_by(k.factory, defs[0], k.name)
    if k.generic:
        types = {p.name: p.type for p in k.params}
        table = ast.Dict([ast.Constant(name) for name in k.generic], [type_ast(types[name]) for name in k.generic])
        defs.append(ast.Expr(ast.Call(_spelled("wp.overload"), [ast.Name(k.name), table], [])))
    return defs


def struct_def(s: Struct) -> ast.ClassDef:
    fields = [ast.AnnAssign(ast.Name(name), type_ast(ty), None, 1) for name, ty in s.fields]
    return ast.ClassDef(s.name, [], [], fields, [_spelled("wp.struct")])


def _helpers(kernels: Iterable[n.Kernel]) -> tuple[list[Struct], list[n.Func]]:
    structs: list[Struct] = []
    funcs: list[n.Func] = []
    for k in kernels:
        structs += [s for s in k.structs if s not in structs]
        for f in k.funcs:                   # one definition serves every instance of a generic helper
            if f not in funcs and not (f.generic and any(g.generic and g.name == f.name for g in funcs)):
                funcs.append(f)
    return structs, funcs


def module(kernels: Iterable[n.Kernel], module_name: str | None = None) -> str:
    """Source of one module: ``import warp as wp``, then each struct, helper and kernel once, in order."""
    kernels = list(kernels)
    structs, funcs = _helpers(kernels)
    defs: list[ast.stmt] = [*map(struct_def, structs)]
    for f in funcs:
        defs += factory_defs(f) if f.factory is not None else [func_def(f)]
    for k in kernels:
        defs += kernel_defs(k, module_name)
    generic = any(f.generic for f in funcs) or any(k.generic for k in kernels)
    head = ("from typing import Any\n\n" if generic else "") + "import warp as wp"
    consts = _module_consts(kernels)
    if consts:
        head += "\n\n" + "\n".join(f"{name} = {value!r}" for name, value in consts)
    parts = [head] + ["\n".join(render(d, 0)) for d in defs]
    return "\n\n\n".join(parts) + "\n"


def kernel_source(k: n.Kernel) -> str:
    return module([k])


# ---------------------------------------------------------------------------------------------------------
# Rendering with line breaks


def reformat(source: str) -> str:
    """Module source written as text by a family (not from IR nodes) laid out by the printer's rules: imports,
    then each definition with its long lines wrapped, two blank lines apart. Comments are not kept."""
    tree = ast.parse(source)
    imports = [ast.unparse(s) for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
    parts = ["\n".join(imports)] if imports else []
    parts += ["\n".join(render(s, 0)) for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))]
    return "\n\n\n".join(parts) + "\n"


def render(node: ast.stmt, depth: int) -> list[str]:
    """Lines of one statement (and its blocks) at indentation ``depth``."""
    pad = INDENT * depth
    if isinstance(node, ast.ClassDef):
        return [f"{pad}@{ast.unparse(d)}" for d in node.decorator_list] + [f"{pad}class {node.name}:"] + _body(
            node.body, depth + 1)
    if isinstance(node, ast.FunctionDef):
        return [f"{pad}@{ast.unparse(d)}" for d in node.decorator_list] + _def_head(node, pad) + _body(
            node.body, depth + 1)
    if isinstance(node, ast.If):
        return _if(node, depth, "if")
    if isinstance(node, ast.For):
        return [f"{pad}for {ast.unparse(node.target)} in {ast.unparse(node.iter)}:"] + _body(node.body, depth + 1)
    if isinstance(node, ast.While):
        return [f"{pad}while {fmt(node.test, len(pad) + 6, depth, tail=1)}:"] + _body(node.body, depth + 1)
    flat = pad + ast.unparse(node)
    if _width(flat) <= WIDTH or not isinstance(node, (ast.Assign, ast.AugAssign, ast.Expr, ast.Return)):
        return [flat]
    if isinstance(node, ast.Assign):
        target = node.targets[0]
        names = target.elts if isinstance(target, ast.Tuple) else [target]
        head = f"{pad}{', '.join(map(ast.unparse, names))} = "
    elif isinstance(node, ast.AugAssign):
        symbol = next(k for k, v in _BINOPS.items() if isinstance(node.op, v))
        head = f"{pad}{ast.unparse(node.target)} {symbol}= "
    else:
        head = pad + ("return " if isinstance(node, ast.Return) else "")
    return (head + fmt(node.value, len(head), depth)).split("\n")


def _def_head(node: ast.FunctionDef, pad: str) -> list[str]:
    """``def name(params) -> ret:``, one parameter per line when that is too long."""
    params = [f"{a.arg}: {ast.unparse(a.annotation)}" for a in node.args.args]
    ret = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    flat = f"{pad}def {node.name}({', '.join(params)}){ret}:"
    if _width(flat) <= WIDTH:
        return [flat]
    return [f"{pad}def {node.name}("] + [f"{pad}{INDENT}{p}," for p in params] + [f"{pad}){ret}:"]


def _if(node: ast.If, depth: int, keyword: str) -> list[str]:
    pad = INDENT * depth
    test = fmt(node.test, len(pad) + len(keyword) + 1, depth, tail=1)
    lines = [f"{pad}{keyword} {test}:"] + _body(node.body, depth + 1)
    if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
        return lines + _if(node.orelse[0], depth, "elif")
    if node.orelse:
        lines += [f"{pad}else:"] + _body(node.orelse, depth + 1)
    return lines


def _body(body: list[ast.stmt], depth: int) -> list[str]:
    return [line for s in body for line in render(s, depth)]


def fmt(node: ast.expr, column: int, depth: int, tail: int = 0) -> str:
    """``node``'s text starting at ``column``, broken over lines (indented from ``depth``) when too long; ``tail``
    characters (a comma, a colon, a closing parenthesis) follow it on its last line."""
    if isinstance(node, _Paren):
        inner = fmt(node.value, column + 1, depth, tail + 1)
        return inner if inner.startswith("(\n") else f"({inner})"
    flat = ast.unparse(node)
    if column + _width(flat) + tail <= WIDTH:
        return flat
    inner = INDENT * (depth + 1)
    if isinstance(node, ast.UnaryOp):
        prefix = "not " if isinstance(node.op, ast.Not) else ast.unparse(ast.UnaryOp(node.op, ast.Name("")))
        looser = (ast.BoolOp, ast.IfExp) if isinstance(node.op, ast.Not) else (ast.BinOp, ast.BoolOp, ast.Compare,
                                                                                ast.IfExp)
        operand = _Paren(node.operand) if isinstance(node.operand, looser) else node.operand
        return prefix + fmt(operand, column + len(prefix), depth, tail)
    if isinstance(node, ast.Call) and (node.args or node.keywords):
        args = [inner + fmt(a, len(inner), depth + 1, tail=1) + "," for a in node.args]
        args += [f"{inner}{k.arg}=" + fmt(k.value, len(inner) + len(k.arg) + 1, depth + 1, tail=1) + ","
                 for k in node.keywords]       # keyword arguments (tile calls: shape=, offset=...)
        return f"{ast.unparse(node.func)}(\n" + "\n".join(args) + "\n" + INDENT * depth + ")"
    if isinstance(node, ast.Dict):             # wp.overload(kernel, {...}): one entry per line
        entries = [f"{inner}{ast.unparse(k)}: " + fmt(v, len(inner) + _width(ast.unparse(k)) + 2, depth + 1, tail=1)
                   + "," for k, v in zip(node.keys, node.values)]
        return "{\n" + "\n".join(entries) + "\n" + INDENT * depth + "}"
    if isinstance(node, (ast.BinOp, ast.BoolOp, ast.Compare, ast.IfExp)):
        parts = _chain(node)
        lines = [inner + (f"{op} " if op else "") + fmt(x, len(inner) + len(op) + 1, depth + 1)
                 for op, x in parts]
        return "(\n" + "\n".join(lines) + "\n" + INDENT * depth + ")"
    return flat


def _chain(node: ast.expr) -> list[tuple[str, ast.expr]]:
    """A left-leaning chain of one precedence level (``a + b - c``) as (operator, operand) pairs; operands that
    need parentheses inside the chain are wrapped in :class:`_Paren`."""
    if isinstance(node, ast.BoolOp):
        word = "and" if isinstance(node.op, ast.And) else "or"
        return [("" if k == 0 else word, _wrapped(v, nested=isinstance(v, ast.BoolOp)))
                for k, v in enumerate(node.values)]
    if isinstance(node, ast.IfExp):
        return [("", _wrapped(node.body, nested=_binds_looser(node.body, 0))),
                ("if", _wrapped(node.test, nested=isinstance(node.test, ast.IfExp))),
                ("else", node.orelse)]
    if isinstance(node, ast.Compare):
        return [("", _wrapped(node.left, nested=_binds_looser(node.left, 0)))] + [
            (next(k for k, v in _CMPOPS.items() if isinstance(op, v)), _wrapped(x, nested=_binds_looser(x, 0)))
            for op, x in zip(node.ops, node.comparators)]
    prec = _PREC[type(node.op)]
    left = node.left
    right_assoc = isinstance(node.op, ast.Pow)          # (a ** b) ** c keeps its parentheses
    if isinstance(left, ast.BinOp) and _PREC[type(left.op)] == prec and not right_assoc:
        head = _chain(left)
    else:
        head = [("", _wrapped(left, nested=_binds_looser(left, prec + 0.5 if right_assoc else prec)))]
    symbol = next(k for k, v in _BINOPS.items() if isinstance(node.op, v))
    right = node.right
    return head + [(symbol, _wrapped(right, nested=_binds_looser(right, prec + 0.5)))]


def _binds_looser(node: ast.expr, prec: float) -> bool:
    if isinstance(node, ast.BinOp):
        return _PREC[type(node.op)] < prec
    return isinstance(node, (ast.BoolOp, ast.Compare, ast.IfExp)) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not))


def _wrapped(node: ast.expr, nested: bool) -> ast.expr:
    return _Paren(node) if nested else node


class _Paren(ast.expr):
    """An operand that :func:`fmt` writes inside parentheses (it binds looser than its chain)."""

    _fields = ("value",)

    def __init__(self, value: ast.expr) -> None:
        super().__init__()
        self.value = value
