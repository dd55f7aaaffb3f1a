"""The judge's static checks of untrusted completions (harness/untrusted.py): what reaches outside the judge's
process is refused with the rule that refused it, and Warp's own code of the committed benchmark splits passes."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from harness.pack import unflatten
from harness.predictions import find_entry
from harness.untrusted import UntrustedCode, check_cpp, check_python

ROOT = Path(__file__).resolve().parent.parent
H = "import warp as wp\n\n\n"
KERNEL = "@wp.kernel\ndef k(a: wp.array(dtype=float)):\n    i = wp.tid()\n    a[i] = {}\n"

REFUSED_PYTHON = {
    "import os": ("import os\nos.system('touch x')\n", "import of 'os'"),
    "from subprocess": ("from subprocess import run\n", "import of 'subprocess'"),
    "import warp submodule": ("import warp.context\n", "import of 'warp.context'"),
    "from warp import module": ("from warp import config\n", "from warp import config"),
    "star import": ("from math import *\n", "from math import *"),
    "relative import": ("from . import x\n", "import of '.'"),
    "import in a factory": (H + "def make():\n    import os\n    return 1\n\n\nk = make()\n",
                            "imports only at the top"),
    "__import__": (H + "m = __import__('os')\n", "name '__import__'"),
    "open": (H + "f = open('x', 'w')\n", "builtin 'open'"),
    "eval": (H + "x = eval('1 + 1')\n", "builtin 'eval'"),
    "getattr": (H + "c = getattr(wp, 'config')\n", "builtin 'getattr'"),
    "subclasses walk": (H + "x = ().__class__.__bases__[0].__subclasses__()\n", "attribute '__"),
    "wp.config": (H + "wp.config.mode = 'debug'\n", "wp.config"),
    "aliased warp": ("import warp as w\nw.config.verify_cuda = True\n", "wp.config"),
    "module through typing": ("import typing\nx = typing.sys\n", "typing.sys (a completion takes only"),
    "set_module_options": (H + "wp.set_module_options({'fast_math': True})\n", "wp.set_module_options"),
    "allocation": (H + "x = wp.zeros(10**10)\n", "wp.zeros(...) where Python runs it"),
    "allocation through wp.types": (H + "x = wp.types.array(shape=10**10)\n", "wp.types.array(...) where Python"),
    "native snippet": (H + "@wp.func_native('asm volatile(\"\");')\ndef f(x: float):\n    ...\n",
                       "wp.func_native changes global state"),
    "array with data": (H + "x = wp.array([1.0, 2.0])\n", "wp.array(...) where Python runs it"),
    "method of a value": (H + "v = wp.vec3(1.0, 2.0, 3.0)\nv.tofile('x')\n", "method call v.tofile"),
    "wp.static reaching out": (H + KERNEL.format("wp.static(len(__builtins__))"), "name '__builtins__'"),
    "wp.static method call": (H + KERNEL.format("wp.static(wp.vec3(0.0).sum())"), "holding a call"),
    "string annotation": (H + "@wp.kernel\ndef k(a: \"__import__('os')\"):\n    pass\n", "a string in an annotation"),
    "f-string annotation": (H + "@wp.kernel\ndef k(a: f\"{1}\"):\n    pass\n", "a string in an annotation"),
    "string sum annotation": (H + "def f(a: wp.array(dtype=('__imp' + 'ort__'))):\n    pass\n",
                              "arithmetic in an annotation"),
    "return annotation": (H + "@wp.func\ndef f(a: float) -> \"float\":\n    return a\n", "a string in an annotation"),
    "local annotation": (H + KERNEL.format("1.0").replace("    i =", "    x: wp.zeros(9) = 1.0\n    i ="),
                         "a call in an annotation"),
    "name bound to a string as annotation": (H + "S = 'float'\n\n\n@wp.kernel\ndef k(b: S):\n    pass\n",
                                             "'S' in an annotation"),
    "function result as annotation": (H + "def t():\n    return 1\n\n\n@wp.struct\nclass P:\n    x: t()\n",
                                      "a call in an annotation"),
    "rebinding wp": ("import warp\nimport typing\nwp = typing\n", "module 'typing' used as a value"),
    "binding an imported name": ("import warp as wp\nwp = 1\n", "'wp' may not be bound again"),
    "module as an argument": ("import warp\nimport typing\n\n\ndef setup(m):\n    return 1\n\n\n"
                              "N = setup(typing)\n", "module 'typing' used as a value"),
    "module in a comprehension": ("import typing\nN = len([m for m in [typing]])\n", "module 'typing' used as a value"),
    "parameter named like a module": ("import typing\n\n\ndef setup(typing):\n    return 1\n",
                                      "'typing' may not be bound again"),
    "imported twice": ("import warp as wp\nimport typing as wp\n", "'wp' imported twice"),
    "class name rebound to a string": (H + "class S:\n    x: int\n\n\nS = 'float'\n", "'S' may not be bound again"),
    "builtin type rebound": (H + "float = 'int'\n", "'float' may not be bound again"),
    "factory rebound": (H + "def make():\n    return 1\n\n\nfor make in [1]:\n    pass\n",
                        "'make' may not be bound again"),
    "module options": (H + "@wp.kernel(module_options={'fast_math': True})\ndef k(a: wp.array(dtype=float)):\n"
                       "    pass\n", "decorator keyword module_options="),
    "native snippet through wp.Function": (H + "def stub(t: int):\n    pass\n\n\nh = wp.Function(func=stub, "
                                           "key='s', namespace='', native_snippet='')\n", "wp.Function(...) where"),
    "build options": (H + "o = wp.ModuleBuildOptions(extra_cpu_preamble='#include <x>')\n",
                      "wp.ModuleBuildOptions(...) where"),
    "graph from bytes": (H + "g = wp.capture_load_from_bytes(b'', modules={})\n", "wp.capture_load_from_bytes(...)"),
    "non-ASCII before wp.static": (H + KERNEL.format("\u00e9 + wp.static(1.0)"), "character U+00E9"),
    "line separator": (H + "X = '\u2028'\n", "character U+2028"),
    "form feed": (H + "X = 1\f\n", "character U+000C"),
    "static imported by name": ("import warp as wp\nfrom warp import static\n", "from warp import static"),
    "static bound to a name": (H + "S = wp.static\n", "wp.static other than called"),
    "static with a keyword": (H + KERNEL.format("wp.static(x=1.0)"), "wp.static(...) takes one expression"),
    "wp.kernel called with compiler flags": (H + "def f(a: wp.array(dtype=float)):\n    pass\n\n\n"
                                             "k = wp.kernel(f, module='unique', module_options={'cpu_compiler_flags':"
                                             " '-include /etc/hostname'})\n", "wp.kernel(...) where Python runs it"),
    "wp.static holding a call": (H + KERNEL.format("wp.static(len((len('a'), 0)))"), "holding a call"),
    "wp.static over two lines": (H + KERNEL.format("wp.static(1.0 +\n        2.0)"), "more than one line"),
    "decorator argument": (H + "@wp.kernel(enable_backward=open('x'))\ndef k(a: wp.array(dtype=float)):\n"
                           "    pass\n", "builtin 'open'"),
    "a Warp function as a sort key": (H + "@wp.func\ndef g(x: int):\n    return x\n\n\no = sorted([1, 2], key=g)\n",
                                      "sorted(...) with a keyword"),
    "a Warp function named like a builtin": (H + "@wp.func\ndef len():\n    return 0\n\n\nn = len()\n",
                                             "'len' may not be bound again"),
    "a class named like a builtin": (H + "class int:\n    x: float\n", "'int' may not be bound again"),
    "typing callable": ("from typing import get_type_hints\n", "from typing import get_type_hints"),
    "typing callable by chain": ("import typing\nx = typing.NamedTuple\n", "typing.NamedTuple"),
    "import aliased to a builtin": ("from typing import Any as len\n", "'len' may not be bound again"),
    "call in an assignment target": (H + "d = {}\nd[wp.zeros(1).numpy().tofile('x')] = 0\n",
                                     "assignment to subscript"),
    "call in a loop target": (H + "d = {}\nfor d[len([])] in [0]:\n    pass\n", "assignment to subscript"),
    "call in an augmented target": (H + "def make():\n    d = {}\n    d[len([])] += 1\n    return 1\n",
                                    "assignment to subscript"),
    "call in a class field's target": (H + "class S:\n    (len([])).real: int\n", "only field annotations"),
    "import over a plain function": (H + "def helper(x):\n    return x\n\n\nfrom math import sqrt as helper\n",
                                     "'helper' may not be bound again"),
    "plain decorator": (H + "def cmd(f):\n    return 1\n\n\n@cmd\ndef hook():\n    pass\n", "decorator 'cmd'"),
    "calling a Warp function from Python": (H + "@wp.func\ndef f(x: float):\n    return x\n\n\ny = f(1.0)\n",
                                            "call of 'f' where Python runs it"),
    "calling a factory's result": (H + "def make():\n    return 1\n\n\nk = make()\nz = k()\n",
                                   "call of 'k' where Python runs it"),
    "default value": (H + "def f(a=open('x', 'w')):\n    return a\n", "builtin 'open'"),
    "decorator": (H + "@open('x', 'w')\ndef f():\n    pass\n", "builtin 'open'"),
    "lambda": (H + "f = lambda: 1\n", "Lambda"),
    "loop at top level": (H + "while True:\n    pass\n", "While statement"),
    "class with a base": (H + "class A(dict):\n    x: int\n", "with bases"),
    "class with a method": (H + "@wp.struct\nclass S:\n    x: float\n\n    def f(self):\n        pass\n",
                            "only field annotations"),
    "global": (H + "def f():\n    global wp\n    return 1\n", "global/nonlocal"),
    "syntax error": (H + "def f(:\n", "syntax error"),
}

REFUSED_CPP = {
    "asm": ('void f() { asm volatile("syscall"); }', "inline assembly ('asm')"),
    "__asm__": ('void f() { __asm__("nop"); }', "inline assembly ('__asm__')"),
    "include": ("void f() {\n#include <stdlib.h>\n}", "preprocessor directive ('#')"),
    "indented define": ("void f() {\n    #define X 1\n}", "preprocessor directive ('#')"),
    "digraph": ("void f() {\n%:include <stdlib.h>\n}", "preprocessor directive ('%:')"),
    "_Pragma": ('void f() { _Pragma("GCC poison x") }', "preprocessor directive ('_Pragma')"),
    "extern declaration": ("void f() { extern int g(const char*); }", "an extern declaration"),
    "raw string hiding code": ('void f() {\n    const char* s = R"x(" /*)x";\n}\nasm("syscall");\n// */',
                               "a raw string literal"),
    "character literal hiding code": ("void f() { int a = 1'0; asm(\"syscall\"); int b = 2'0; }",
                                      "a digit separator"),
    "digit separator hiding a comment": ('void f() {\n    int x = 1\'1 /*\'; "*/ ; "//" ; } extern "C" int g();\n}',
                                         "a digit separator in \"1'1\""),
    "long character literal": ("void f() { char c = 'abcdefghijklmn'; }", "is not a character literal"),
    "line splice": ('void f() {\n    as\\\nm volatile("");\n}', "a line splice"),
    "line splice ending a comment": ('void f() {\n    // \\\n    /*\n    int g(const char*) __asm__("system");\n'
                                     '    // */\n}', "a line splice"),
    "number after a keyword": ("void f() {\n    int z = sizeof.1'1+' /* ';\n    int g(const char*) __asm__(\"system\");"
                               "\n    // */\n}", "a digit separator in \".1'1\""),
    "non-ASCII in code": ("void f() { int \u00b21 = 0; }", "character U+00B2"),
    "comment left open": ("void f() {\n    g();\n    /* }", "a comment not closed in the entry"),
    "string left open": ('void f() {\n    const char* s = "abc;\n}', "a string not closed"),
    "dollar in an identifier": ('void f() {\n    int a$1e = 0;\n    a$1e+_Pragma("GCC error") 0;\n}', "a $"),
    "universal character name": ('void f() { \\u0061sm volatile(""); }', "a backslash outside a literal"),
    "trigraph": ("void f() {\n??=include <stdlib.h>\n}", "a trigraph"),
    "directive after a comment": ('void f() {\n/* */ #include "/etc/hostname"\n}', "a preprocessor directive"),
    "lone carriage return": ('void f() { g(); \r#include "/etc/hostname"\n}', "control character '\\r'"),
    "form feed": ('void f() {\n\f#include "/etc/hostname"\n}', "control character '\\x0c'"),
    "extern __global__ in a CPU entry": ('void f() { extern /**/ __global__ int g(const char*); }',
                                         "an extern declaration"),
    "attribute": ('void f() { static int g(const char*) __attribute__((weakref("system"))); }', "an attribute"),
    "standard attribute": ("void f() { [[gnu::unused]] int x = 0; }", "an attribute ('[['"),
    "brace digraph": ("void f() { g(); %> int x; <% }", "a digraph ('%>')"),
}


@pytest.mark.parametrize("name", REFUSED_PYTHON)
def test_python_that_reaches_outside_is_refused_naming_the_rule(name):
    source, expected = REFUSED_PYTHON[name]
    with pytest.raises(UntrustedCode, match=r"^line \d+: ") as info:
        check_python(source)
    assert expected in str(info.value), str(info.value)


@pytest.mark.parametrize("name", REFUSED_CPP)
def test_cpp_with_assembly_or_directives_is_refused_naming_the_line(name):
    source, expected = REFUSED_CPP[name]
    with pytest.raises(UntrustedCode, match=r"^line \d+: ") as info:
        check_cpp(source)
    assert expected in str(info.value), str(info.value)


def test_warp_module_constructs_are_accepted():
    """What the families write: closures' factories, generic kernels and their overloads, structs, constants,
    typing.Any, wp.static of a constant expression, array types in annotations, math, a constant made by a value
    type's constructor, overloads of a Warp function; and a kernel's print."""
    check_python(H.replace("\n\n\n", "\nimport math\nfrom typing import Any\n\n\n") + """SCALE = wp.constant(2.5)
N = 4


@wp.struct
class Site:
    pos: wp.vec3
    mass: float


def make_term(k: float):

    @wp.func
    def term(x: float) -> float:
        return x * wp.static(k * math.pi)
    return term


term = make_term(1.5)


@wp.kernel
def gen(a: wp.array(dtype=Any), s: wp.array2d(dtype=Site)):
    i = wp.tid()
    x: float = 1.0
    a[i] = a[i] * SCALE + term(x) + float(wp.static(N * 2))
    print(a[i])


wp.overload(gen, {"a": wp.array(dtype=wp.float64), "s": wp.array2d(dtype=Site)})
AXIS = wp.constant(wp.vec3(0.0, 1.0, 0.0))


@wp.func
def mix(a: float, b: float) -> float:
    return a + b


@wp.func
def mix(a: int, b: int) -> int:
    return a * b
""")


def test_an_entry_brings_nothing_else_from_file_scope():
    """find_entry takes a definition with its template line; a template line or a declaration line that carries
    other code (an extern declaration of the C library's system) is not taken."""
    body = "(int a)\n{\n    g(a);\n}\n"
    assert find_entry("template <bool c>\nstatic void f" + body, "f").startswith("template <bool c>\n")
    smuggled = find_entry('struct s; extern "C" int system(const char*); template <bool c>\nstatic void f' + body, "f")
    assert smuggled == "static void f" + body.rstrip("\n")
    assert find_entry('extern "C" int system(const char*); static void f' + body, "f") is None
    assert find_entry('extern "C" __global__ void f' + body, "f") == 'extern "C" __global__ void f' + body.rstrip("\n")


def test_a_cuda_entry_may_be_extern_c_global_and_nothing_more():
    check_cpp('extern "C" __global__ void f(int a)\n{\n    g(a);\n}', cuda=True)
    with pytest.raises(UntrustedCode, match="an extern declaration"):
        check_cpp('extern "C" __global__ void f(int a)\n{\n    extern "C" __global__ void h();\n}', cuda=True)
    with pytest.raises(UntrustedCode, match="an extern declaration"):
        check_cpp('extern "C" __global__ void f(int a)\n{\n    g(a);\n}')


def test_a_completion_holding_warps_own_entry_text_replaces_only_what_it_should():
    """The judge locates Warp's entries in the module it generated before replacing any: a completion whose
    forward quotes Warp's own backward (in a comment) is judged, not reported as a broken judge."""
    from harness.judge import _swap

    fwd, bwd = "static void k_fwd(int a)\n{\n    f(a);\n}", "static void k_bwd(int a)\n{\n    b(a);\n}"
    source = f"head\n{fwd}\nmiddle\n{bwd}\ntail\n"
    new_fwd = "static void k_fwd(int a)\n{\n    /*\n" + bwd + "\n    */\n    g(a);\n}"
    new_bwd = "static void k_bwd(int a)\n{\n    c(a);\n}"
    out = _swap(source, [(fwd, new_fwd, "k_fwd"), (bwd, new_bwd, "k_bwd")])
    assert out == f"head\n{new_fwd}\nmiddle\n{new_bwd}\ntail\n"


def test_comments_and_strings_are_not_code():
    check_cpp('void f() {\n    // #include <x> and asm\n    /* #define\n asm */ const char* s = "#asm";\n'
              "    char c = '#';\n}\n")


@pytest.mark.parametrize("dataset", ["cpu_code", "cuda_code"])
def test_warp_code_of_the_committed_benchmark_splits_is_accepted(dataset):
    """Every record of a committed test split: its Python passes (the cpp2py/cuda2py oracle) and so do its
    forward and backward entries (the py2cpp/py2cuda oracle)."""
    files = sorted((ROOT / "production" / dataset / "data").glob("test-*.parquet"))
    assert files, f"no test split in production/{dataset}"
    rows = [unflatten(row) for f in files for row in pq.read_table(f).to_pylist()]
    refused = []
    for r in rows:
        try:
            check_python(r["python_source"])
            for entry in (r["ir"]["forward"], r["ir"].get("backward") or ""):
                check_cpp(entry, cuda=dataset == "cuda_code")
        except UntrustedCode as exc:
            refused.append((r["id"], r["family"], str(exc)))
    assert not refused, refused[:5]
    assert len({r["family"] for r in rows}) >= 20
