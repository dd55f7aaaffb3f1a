"""Static checks of a model's completion before the judge runs any of it.

A completion is untrusted. The judge's child process already contains what it *does* to itself (a crash, a
hang, memory: :mod:`harness.judge_worker`, :mod:`harness.isolation`); these checks keep it from reaching
*outside* itself, which no process limit stops: files, processes, the network. A completion that fails a check
is judged ``invalid`` with the reason, and nothing of it is executed or compiled.

* **Warp Python** (``cpp2py``, ``cuda2py``): Python executes a module's top level, the bodies of plain
  functions it calls (closures' factories), decorators, default values, annotations and ``wp.static(...)``
  arguments. Warp compiles the bodies of ``@wp.kernel`` / ``@wp.func`` functions instead of running them (a
  ``@wp.func`` called from Python runs as Python, so Python-run code may not call one). The rules:

  - printable ASCII only (Warp reads its source by byte offsets: a non-ASCII character before ``wp.static``
    moved the text it evaluates into a string literal; and U+2028 broke lines for one reader of the source
    and not another);
  - imports only of ``warp`` (as a module: ``wp.static`` is ``wp.static(...)``, never another name),
    ``typing`` (its annotation names: ``Any``, ``Tuple``...) and ``math``;
  - no ``_``-prefixed attribute (``__class__``, ``__globals__``...), no ``__``-prefixed name, none of the
    builtins that reach code, files or introspection (``eval``, ``open``, ``getattr``...);
  - an attribute chain on an imported module passes through no other module (``wp.config``, ``wp.context``,
    ``typing.sys``; ``wp.types`` is allowed) and names none of Warp's process-wide API
    (``wp.set_module_options``, ``wp.func_native``...); a module is used only as the root of a chain;
  - a name the rules trust (an import, ``int``/``float``/``range``..., a top-level class or plain function) is
    never bound again, and no function or class is named like a builtin;
  - decorators are Warp's own, with no keyword but ``enable_backward`` (``module_options`` would carry a C++
    preamble or compiler flags), and Warp's decorators are used only as decorators;
  - ``wp.static(...)`` holds one line and no call (Warp re-reads its text from the source line);
  - where Python runs the code, a call goes to a plain top-level function of the completion, a plain builtin,
    an array or value type (``wp.array(dtype=...)``, ``wp.vec3(...)``), ``wp.constant`` or ``wp.overload``
    (builtins without keywords: ``sorted(..., key=f)`` would call ``f``, and a ``@wp.func`` called from Python
    runs its body as Python), and assignments there are to names only:
    an allow-list, since Warp's API has other ways to native code
    and files (``wp.Function(native_snippet=...)``, ``wp.ModuleBuildOptions``, ``wp.capture_load``); never a
    method of a value (``x.numpy().tofile(...)``);
  - an annotation is a type: the completion's structs, ``typing`` names, plain types, chains on imported
    modules, array types; no string (Warp would ``eval`` one), no call, no arithmetic.
* **Generated C++ and CUDA** (``py2cpp``, ``py2cuda``): the judge keeps only the completion's entry functions
  (:func:`harness.predictions.find_entry`: a declaration line of specifiers, an optional ``template <...>``
  line, the body), so nothing else at file scope reaches the build. Inside them, none of: inline assembly
  (``asm``: system calls from host code); attributes (``__attribute__((weakref("system")))``, ``[[...]]``,
  ``__declspec``: aliases, sections, constructors); ``#`` outside a literal (a directive: an ``#include`` of a
  system header, or of any file, whose text the compiler's message would show); ``_Pragma``; ``extern`` but a
  CUDA entry's own ``extern "C" __global__`` on its declaration. And nothing that would make this check read
  the text differently from the compiler: digraphs (``%:``, ``<%``...), line splices and universal character
  names (a backslash outside a literal), trigraphs, control characters (a lone carriage return starts a line),
  raw strings, digit separators, "character literals" longer than a character, non-ASCII text, ``$``, and a
  comment or literal the entry does not close (it would run on into the next entry).

These rules accept Warp's own code of every committed record (tests check the benchmark splits). Ten red-team
rounds against the judge's own execution paths found 27 ways past earlier versions; each is now a test: annotations
that evaluate strings; a call in an assignment's target (``d[f()] = 0``); a rebound ``wp`` or class name; a
``@wp.func`` run as Python through ``sorted(key=)`` or a builtin's name; decorators and their ``module_options``;
``wp.kernel`` called as a function with compiler flags; ``wp.Function`` with a native snippet; ``wp.static`` under
another name; non-ASCII text that shifted Warp's byte-offset reading of a ``wp.static`` argument into a string
literal; a U+2028 that moved the line numbers Warp looks source up by; file-scope declarations smuggled onto the
template line; raw strings, digit separators, a number right after a keyword (``sizeof.1'1``), a ``$`` in an
identifier and a line splice ending a ``//`` comment, which desynchronised the lexer; a comment left open at the
end of the forward entry that ran on into the backward; a form feed before ``#include``. The checks filter the
routes out that a model can write in plain Python and C++; they are not a sandbox against an adversary who forges
function pointers into the C library or finds a flaw in Warp: for that, run ``wkf-eval`` in a container.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache

from .predictions import CPP_LITERALS, blank_literals

ALLOWED_IMPORTS = frozenset({"warp", "typing", "math"})
#: what a completion may take from ``typing``: names for annotations (``get_type_hints``, ``NamedTuple``,
#: ``ForwardRef`` and the like evaluate strings)
TYPING_NAMES = frozenset({"Any", "Tuple", "Union", "Optional", "List", "Dict", "Callable", "Sequence"})
#: builtins a completion may not name anywhere: code execution, files, introspection, interpreter state
DENIED_NAMES = frozenset({
    "eval", "exec", "compile", "open", "input", "breakpoint", "help", "exit", "quit", "globals", "locals", "vars",
    "getattr", "setattr", "delattr", "type", "object", "super", "memoryview", "classmethod", "staticmethod",
    "property",
})
#: builtins Python-executed code may call
TYPE_BUILTINS = frozenset({"int", "float", "bool", "tuple"})
PLAIN_BUILTINS = frozenset({"int", "float", "bool", "range", "len", "min", "max", "abs", "tuple", "list", "dict",
                            "round", "sum", "enumerate", "zip", "reversed", "sorted", "all", "any", "pow", "divmod"})
#: Warp API that changes process-wide state, runs work or touches files, or takes native code (``func_native``: a
#: C++/CUDA snippet compiled as is): never in a completion
DENIED_WARP = frozenset({
    "set_module_options", "get_module_options", "get_module", "load_module", "force_load", "init", "launch",
    "launch_tiled", "set_device", "ScopedDevice", "synchronize", "synchronize_device", "synchronize_stream",
    "clear_kernel_cache", "clear_lto_cache", "capture_begin", "capture_end", "capture_launch", "capture_while",
    "capture_if", "set_mempool_enabled", "set_mempool_release_threshold", "set_mempool_access_enabled",
    "set_peer_access_enabled", "ScopedTimer", "TimingResult", "timing_begin", "timing_end", "compile_aot_module",
    "load_aot_module", "config", "context", "build", "utils", "native", "Tape", "map_cuda_device",
    "unmap_cuda_device", "set_stream", "ScopedStream", "ScopedCapture", "ScopedMempool", "ScopedPeerAccess",
    "from_ptr", "from_ipc_handle", "from_numpy", "from_torch", "from_jax", "from_paddle", "from_dlpack", "to_torch",
    "to_jax", "to_paddle", "to_dlpack", "func_native",
})
#: the ``wp.*`` that code Python runs may call, besides array types and value types (``wp.vec3(...)``,
#: ``wp.float32(...)``): an allow-list, since Warp's API has many ways to native code or files
#: (``wp.Function(native_snippet=...)``, ``wp.ModuleBuildOptions(extra_cpu_preamble=...)``, ``wp.capture_load``).
#: The decorators are used only as decorators: ``wp.kernel(f, module_options={"cpu_compiler_flags": ...})`` called
#: as a function would set the compiler's flags
PYTHON_RUN_WARP = frozenset({"constant", "overload"})
#: keywords of a Warp decorator (``module=`` and ``module_options=`` would carry build options, e.g. a C++
#: preamble of the completion's own)
DECORATOR_KEYWORDS = frozenset({"enable_backward"})
#: ``wp.*`` calls that are array *types* when given only ``dtype``/``ndim``: ``a: wp.array(dtype=float)``,
#: ``wp.overload(k, {"a": wp.array(dtype=wp.vec3)})``
ARRAY_TYPES = frozenset({"array", "array1d", "array2d", "array3d", "array4d", "indexedarray", "fabricarray",
                         "indexedfabricarray", "tile"})
BUILTIN_NAMES = TYPE_BUILTINS | PLAIN_BUILTINS | DENIED_NAMES
WARP_DECORATORS = frozenset({"kernel", "func", "func_grad", "func_replay", "struct", "overload"})


class UntrustedCode(ValueError):
    """A completion the judge refuses to run; the message says which rule and where."""


@lru_cache(maxsize=None)
def _attribute_problem(module: str, path: tuple[str, ...]) -> str | None:
    """Why the chain ``<module>.<path>`` is refused, or None. A chain may not pass through a module (``wp.config``,
    ``typing.sys``) other than ``wp.types``, nor name Warp's process-wide API."""
    import importlib
    import inspect

    obj = importlib.import_module(module)
    shown = "wp" if module == "warp" else module
    if module == "typing" and path and path[0] not in TYPING_NAMES:
        return f"typing.{path[0]} (a completion takes only {', '.join(sorted(TYPING_NAMES))} from typing)"
    for k, part in enumerate(path):
        if module == "warp" and part in DENIED_WARP:
            return f"wp.{'.'.join(path[:k + 1])} changes global state, touches memory, files or devices, or " \
                   f"takes native code"
        if not hasattr(obj, part):
            return None            # an AttributeError when it runs, or Warp's own codegen error: nothing escapes
        obj = getattr(obj, part)
        if inspect.ismodule(obj) and (module, path[:k + 1]) != ("warp", ("types",)):
            return f"{shown}.{'.'.join(path[:k + 1])} is a module"
    return None


@lru_cache(maxsize=None)
def _warp_value_type(path: tuple[str, ...]) -> bool:
    """Whether ``wp.<path>`` is a scalar, vector, matrix, quaternion or transform type (a harmless constructor)."""
    import warp
    import warp.types as T

    obj = warp
    for part in path:
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return isinstance(obj, type) and any(test(obj) for test in (
        T.type_is_scalar, T.type_is_vector, T.type_is_matrix, T.type_is_quaternion, T.type_is_transformation))


def _chain(node: ast.expr) -> tuple[str, ...] | None:
    """``a.b.c`` -> ("a", "b", "c"); None for anything that is not a plain dotted name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return (node.id, *reversed(parts))


def _is_warp_decorator(dec: ast.expr, warp_names: set[str]) -> bool:
    chain = _chain(dec.func if isinstance(dec, ast.Call) else dec)
    return bool(chain) and len(chain) == 2 and chain[0] in warp_names and chain[1] in WARP_DECORATORS


class _Checker:
    def __init__(self, source: str):
        self.tree = ast.parse(source)
        self.warp_names: set[str] = set()      # what ``import warp [as X]`` bound
        self.modules: dict[str, str] = {}      # local name -> imported module
        self.imported: set[str] = set()        # every name an import binds
        # names the rules trust by name, bound once by their definition and never again
        # (Warp functions may be defined again: that is how overloads are written)
        self.protected = TYPE_BUILTINS | PLAIN_BUILTINS | {s.name for s in self.tree.body if isinstance(
            s, ast.ClassDef) or (isinstance(s, ast.FunctionDef) and not s.decorator_list)}
        self.defined_once: set[str] = set()
        self.parent = {child: node for node in ast.walk(self.tree) for child in ast.iter_child_nodes(node)}
        # names an annotation may use: the completion's structs, ``from typing import ...``, plain types
        self.type_names = {s.name for s in self.tree.body if isinstance(s, ast.ClassDef)} | TYPE_BUILTINS
        # the functions Python-run code may call: plain top-level functions (closures' factories). Not a Warp
        # function (called from Python, Warp runs its body as Python) nor a name bound to a value
        self.plain_functions = {s.name for s in self.tree.body if isinstance(s, ast.FunctionDef)
                                and not s.decorator_list}

    def fail(self, node: ast.AST, why: str) -> None:
        raise UntrustedCode(f"line {getattr(node, 'lineno', '?')}: {why}")

    def rebound(self, node: ast.AST, name: str) -> None:
        self.fail(node, f"{name!r} may not be bound again (an import, a builtin, or a top-level class or plain "
                        f"function)")

    def check(self) -> None:
        for node in ast.walk(self.tree):
            self.everywhere(node)
        self.executed_block(self.tree.body)

    # rules for every node, executed or compiled by Warp
    def everywhere(self, node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if node not in self.tree.body:
                self.fail(node, "imports only at the top of the module")
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if node.__dict__.get("level") or name.split(".")[0] not in ALLOWED_IMPORTS or (
                        isinstance(node, ast.Import) and "." in name):
                    self.fail(node, f"import of {name or '.'!r} (a completion may import only "
                                    f"{', '.join(sorted(ALLOWED_IMPORTS))})")
            for a in node.names:
                bound = a.asname or a.name
                if bound in self.imported:
                    self.fail(node, f"{bound!r} imported twice")
                if bound in BUILTIN_NAMES | self.protected:
                    self.rebound(node, bound)
                self.imported.add(bound)
            if isinstance(node, ast.Import):
                self.modules |= {a.asname or a.name: a.name for a in node.names}
                self.warp_names |= {a.asname or a.name for a in node.names if a.name == "warp"}
            else:
                for a in node.names:
                    if a.name == "*" or node.module == "warp":
                        self.fail(node, f"from {node.module} import {a.name} (a module is used as module.<name>)")
                    if why := _attribute_problem(node.module, (a.name,)):
                        self.fail(node, f"from {node.module} import {a.name}: {why}")
                    if node.module == "typing":
                        self.type_names.add(a.asname or a.name)
        elif isinstance(node, ast.Name):
            if node.id.startswith("__"):
                self.fail(node, f"name {node.id!r}")
            if node.id in DENIED_NAMES:
                self.fail(node, f"builtin {node.id!r} (code execution, files or introspection)")
            if (node.id in self.imported or node.id in self.protected) and not isinstance(node.ctx, ast.Load):
                self.rebound(node, node.id)
            parent = self.parent.get(node)
            if node.id in self.modules and not (isinstance(parent, ast.Attribute) and parent.value is node):
                self.fail(node, f"module {node.id!r} used as a value (only as {node.id}.<name>)")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_"):
                self.fail(node, f"attribute {node.attr!r}")
            if node.attr == "static" and isinstance(node.value, ast.Name) and node.value.id in self.warp_names:
                parent = self.parent.get(node)
                if not (isinstance(parent, ast.Call) and parent.func is node):
                    self.fail(node, "wp.static other than called as wp.static(...)")
                if parent.keywords or len(parent.args) != 1:
                    self.fail(node, "wp.static(...) takes one expression")
            chain = _chain(node)
            if chain and chain[0] in self.modules and (why := _attribute_problem(self.modules[chain[0]], chain[1:])):
                self.fail(node, why)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            self.fail(node, "global/nonlocal declarations")
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and (
                node.name in BUILTIN_NAMES):
            self.rebound(node, node.name)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and (
                node.name in self.imported or (node.name in self.protected and node.name in self.defined_once)):
            self.rebound(node, node.name)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in self.protected:
            self.defined_once.add(node.name)
        elif isinstance(node, ast.arg):
            if node.arg in self.imported or node.arg in self.protected:
                self.rebound(node, node.arg)
            if node.annotation is not None:
                self.type_expression(node.annotation)
        elif isinstance(node, ast.FunctionDef) and node.returns is not None:
            self.type_expression(node.returns)
        elif isinstance(node, ast.AnnAssign):
            self.type_expression(node.annotation)

    def type_expression(self, expr: ast.expr) -> None:
        """An annotation is a type: Warp evaluates it, and a string it evaluates to (a literal, an f-string, a name
        bound to a string, a function's result) is evaluated again as code. So it may hold only the completion's
        structs, ``typing`` names, ``int``/``float``/``bool``/``tuple``, chains on imported modules (``wp.vec3``),
        array types (``wp.array(dtype=..., ndim=...)``), subscripts, tuples, numbers and ``|``."""
        for node in ast.walk(expr):
            if isinstance(node, ast.Name):
                parent = self.parent.get(node)
                if node.id not in self.type_names and not (
                        node.id in self.modules and isinstance(parent, ast.Attribute) and parent.value is node):
                    self.fail(node, f"{node.id!r} in an annotation (a type there is a struct of the completion, a "
                                    f"typing name, int/float/bool/tuple or a chain on an imported module)")
            elif isinstance(node, ast.Call):
                chain = _chain(node.func)
                if not (chain and len(chain) == 2 and chain[0] in self.warp_names and chain[1] in ARRAY_TYPES
                        and not node.args and all(k.arg in ("dtype", "ndim") for k in node.keywords)):
                    self.fail(node, "a call in an annotation other than wp.array(dtype=..., ndim=...)")
            elif isinstance(node, ast.JoinedStr) or (
                    isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, bool, type(None)))):
                self.fail(node, "a string in an annotation (Warp would evaluate it as code)")
            elif isinstance(node, ast.BinOp) and not isinstance(node.op, ast.BitOr):
                self.fail(node, "arithmetic in an annotation")
            elif not isinstance(node, (ast.Name, ast.Attribute, ast.Subscript, ast.Tuple, ast.List, ast.Constant,
                                       ast.BinOp, ast.BitOr, ast.Call, ast.keyword, ast.Load)):
                self.fail(node, f"{type(node).__name__} in an annotation")

    # code that Python runs
    def executed_block(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
                for d in stmt.decorator_list:
                    if not _is_warp_decorator(d, self.warp_names):
                        self.fail(d, f"decorator {ast.unparse(d)[:60]!r} (only "
                                     f"{', '.join('wp.' + k for k in sorted(WARP_DECORATORS))})")
                    for k in d.keywords if isinstance(d, ast.Call) else ():
                        if k.arg not in DECORATOR_KEYWORDS:
                            self.fail(d, f"decorator keyword {k.arg}= (only "
                                         f"{', '.join(sorted(DECORATOR_KEYWORDS))})")
            if isinstance(stmt, ast.FunctionDef):
                for part in self.decorator_arguments(stmt) + stmt.args.defaults + [
                        d for d in stmt.args.kw_defaults if d]:
                    self.executed(part)
                for a in stmt.args.args + stmt.args.kwonlyargs + stmt.args.posonlyargs:
                    if a.annotation is not None:
                        self.executed(a.annotation)
                if stmt.returns is not None:
                    self.executed(stmt.returns)
                if any(_is_warp_decorator(d, self.warp_names) for d in stmt.decorator_list):
                    self.compiled_block(stmt.body)
                else:
                    self.executed_block(stmt.body)
            elif isinstance(stmt, ast.ClassDef):
                if stmt.bases or stmt.keywords:
                    self.fail(stmt, f"class {stmt.name} with bases (a completion defines only @wp.struct)")
                for part in self.decorator_arguments(stmt):
                    self.executed(part)
                for item in stmt.body:
                    if isinstance(item, ast.AnnAssign) and item.value is None and isinstance(item.target, ast.Name):
                        self.executed(item.annotation)
                    elif not (isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant)):
                        self.fail(item, f"class {stmt.name}: only field annotations")
            elif isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Pass)):
                continue
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.Return, ast.Expr, ast.AugAssign)):
                if isinstance(stmt, ast.AnnAssign):
                    self.executed(stmt.annotation)
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
                for target in targets:
                    self.plain_target(target)
                value = stmt.value
                if value is not None:
                    self.executed(value)
            elif isinstance(stmt, (ast.If, ast.For)):
                for part in ([stmt.test] if isinstance(stmt, ast.If) else [stmt.iter]):
                    self.executed(part)
                if isinstance(stmt, ast.For):
                    self.plain_target(stmt.target)
                self.executed_block(stmt.body)
                self.executed_block(stmt.orelse)
            else:
                self.fail(stmt, f"{type(stmt).__name__} statement where Python runs it")

    def plain_target(self, target) -> None:
        """Where Python runs the code, an assignment's target is names (``x``, ``a, b``): a subscript or an
        attribute there is evaluated too (``d[f()] = 0`` calls ``f``)."""
        if target is None or isinstance(target, ast.Name):
            return
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self.plain_target(element)
            return
        self.fail(target, f"assignment to {type(target).__name__.lower()} {ast.unparse(target)[:40]!r} where Python "
                          f"runs it (only to names)")

    @staticmethod
    def decorator_arguments(stmt: ast.FunctionDef | ast.ClassDef) -> list[ast.expr]:
        """What Python evaluates of a definition's (already checked) Warp decorators: their arguments."""
        return [x for d in stmt.decorator_list if isinstance(d, ast.Call) for x in d.args + [k.value for k in
                                                                                       d.keywords]]

    def executed(self, expr: ast.expr) -> None:
        for node in ast.walk(expr):
            if isinstance(node, (ast.Lambda, ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)):
                self.fail(node, f"{type(node).__name__} where Python runs it")
            if not isinstance(node, ast.Call):
                continue
            chain = _chain(node.func)
            if chain is None:
                self.fail(node, "a call of a computed value where Python runs it")
            if len(chain) == 1:
                if chain[0] not in self.plain_functions and chain[0] not in PLAIN_BUILTINS:
                    self.fail(node, f"call of {chain[0]!r} where Python runs it (only the completion's own plain "
                                    f"functions, plain builtins and wp.*)")
                if chain[0] in PLAIN_BUILTINS and node.keywords:
                    # sorted(..., key=f) would call f, and a @wp.func called from Python runs its body as Python
                    self.fail(node, f"{chain[0]}(...) with a keyword where Python runs it")
            elif chain[0] not in self.warp_names:
                self.fail(node, f"method call {'.'.join(chain)}(...) where Python runs it")
            elif chain[-1] in ARRAY_TYPES:
                if node.args or any(k.arg not in ("dtype", "ndim") for k in node.keywords):
                    self.fail(node, f"{'.'.join(chain)}(...) where Python runs it (allocates memory; as an array "
                                    f"type it takes only dtype= and ndim=)")
            elif not (len(chain) == 2 and chain[1] in PYTHON_RUN_WARP) and not _warp_value_type(chain[1:]):
                self.fail(node, f"{'.'.join(chain)}(...) where Python runs it (there, only wp."
                                f"{', wp.'.join(sorted(PYTHON_RUN_WARP))}, array types and value types)")

    # bodies Warp compiles: only wp.static(...) runs in Python
    def compiled_block(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Call) and (chain := _chain(node.func)) and len(chain) == 2 and \
                        chain[0] in self.warp_names and chain[1] == "static":
                    # Warp re-reads the argument's text from the source line and rewrites its len(...) calls:
                    # one line and no call keep that text the expression checked here
                    if node.lineno != node.end_lineno or any(isinstance(x, ast.Call) for x in ast.walk(node.args[0])):
                        self.fail(node, "wp.static(...) of more than one line or holding a call")
                    for arg in node.args:
                        self.executed(arg)
                elif isinstance(node, ast.AnnAssign):          # Warp evaluates a local's annotation
                    self.executed(node.annotation)
                elif isinstance(node, ast.FunctionDef):
                    self.fail(node, f"function {node.name} defined inside a Warp function")


#: what Python source may hold besides printable ASCII: tab, newline, a carriage return before a newline. Warp
#: slices its source lines by the AST's byte offsets (a non-ASCII character before ``wp.static(...)`` moves the
#: slice onto other text), and U+2028, form feeds and the like break lines for some readers and not others.
_PY_CHARACTERS = re.compile(r"[^\x20-\x7e\t\n\r]|\r(?!\n)")


def _refuse(text: str, pos: int, why: str) -> None:
    raise UntrustedCode(f"line {text.count(chr(10), 0, pos) + 1}: {why}")


def check_python(source: str) -> None:
    """Raise :class:`UntrustedCode` unless ``source`` keeps to a Warp module's vocabulary (see the module doc)."""
    odd = _PY_CHARACTERS.search(source)
    if odd:
        _refuse(source, odd.start(), f"character U+{ord(odd.group(0)[0]):04X} (a completion is printable ASCII: "
                                     f"Warp reads its source by byte offsets)")
    try:
        checker = _Checker(source)
    except SyntaxError as exc:
        raise UntrustedCode(f"line {exc.lineno}: syntax error: {exc.msg}") from exc
    checker.check()


_CPP_DENIED = re.compile(r"/\*|\*/|[\"'$]|#|%:|<%|%>|<:|:>|\b(asm|__asm|__asm__)\b|\b_Pragma\b|\?\?[=/'()!<>-]"
                         r"|\\|\bextern\b|\b(__attribute__|__attribute|__declspec)\b|\[\[")
_CPP_WHAT = {"asm": "inline assembly", "__asm": "inline assembly", "__asm__": "inline assembly",
             "#": "a preprocessor directive", "%:": "a preprocessor directive", "_Pragma": "a preprocessor directive",
             "<%": "a digraph", "%>": "a digraph", "<:": "a digraph", ":>": "a digraph",
             "\\": "a backslash outside a literal (a line splice or a universal character name)",
             "extern": "an extern declaration (only extern \"C\" __global__)",
             "__attribute__": "an attribute", "__attribute": "an attribute", "__declspec": "an attribute",
             "[[": "an attribute",
             "/*": "a comment not closed in the entry (it would run on into the next)", "*/": "a comment's end "
             "without its start", '"': "a string not closed", "'": "a character literal not closed",
             "$": "a $ (Clang takes it in identifiers)"}
#: control characters other than tab and newline (a lone carriage return or a form feed starts a line for the
#: compiler but not for a line-based reading); a carriage return before a newline is fine
_CPP_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)")


def check_cpp(text: str, cuda: bool = False) -> None:
    """Raise :class:`UntrustedCode` if C++/CUDA entry ``text`` holds inline assembly, a preprocessor directive, a
    line splice, a trigraph, an ``extern`` other than a CUDA entry's own, a raw string or a character literal that
    is no character (all things that reach outside, or that make the text read differently by this check and by
    the compiler)."""
    for literal in CPP_LITERALS.finditer(text):
        body = literal.group(0)
        if literal.group("number") is not None and "'" in body:
            _refuse(text, literal.start(), f"a digit separator in {body!r}")
        if literal.group("delim") is not None:
            _refuse(text, literal.start(), "a raw string literal in the completion's code")
        if body.startswith("'") and len(body) > 12:
            _refuse(text, literal.start(), f"{body[:20]!r}... is not a character literal")
    splice = re.search(r"(\\|\?\?/)[ \t]*\r?\n", text)
    if splice:      # the compiler joins the lines before it finds comments: "// \" would swallow the next line
        _refuse(text, splice.start(), "a line splice (a backslash at the end of a line) in the completion's code")
    odd = re.search(r"[^\x00-\x7f]", text)
    if odd:         # the check's tokens are ASCII; the compiler's identifiers are not
        _refuse(text, odd.start(), f"character U+{ord(odd.group(0)):04X} (a completion's code is ASCII)")
    control = _CPP_CONTROL.search(text)
    if control:
        _refuse(text, control.start(), f"control character {control.group(0)!r} in the completion's code")
    blanked = blank_literals(text)
    if cuda:        # a CUDA entry's own ``extern "C" __global__``, before its body
        head = blanked.find("{")
        blanked = re.sub(r"\bextern(\s+__global__)", r"      \1", blanked[:head]) + blanked[head:]
    match = _CPP_DENIED.search(blanked)
    if match:
        what = match.group(0)
        kind = _CPP_WHAT.get(what, "a trigraph" if what.startswith("??") else "an extern declaration")
        _refuse(blanked, match.start(), f"{kind} ({what!r}) in the completion's code")
