"""Finding kernel families: every public module of ``kernels/`` defines ``FAMILY`` (packages such as
``kernels/ir`` and underscore modules are shared machinery, not families)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

from .errors import FamilyDefinitionError
from .family import Family

REQUIRED = ("generate", "reference", "tolerance")


def is_family_file(path: Path) -> bool:
    return (path.suffix == ".py" and path.parent.name == "kernels"
            and not path.name.startswith(("_", "test_", "conftest")))


def family_from_module(module: ModuleType) -> Family:
    family = getattr(module, "FAMILY", None)
    where = getattr(module, "__file__", module.__name__)
    if not isinstance(family, Family):
        raise FamilyDefinitionError(f"{where}: a family module must define FAMILY = harness.family.Family(...)")
    for attr in REQUIRED:
        if not callable(getattr(family, attr, None)):
            raise FamilyDefinitionError(f"{where}: family {family.name!r} lacks a callable {attr!r}")
    stem = Path(where).stem
    if family.name != stem:
        raise FamilyDefinitionError(f"{where}: FAMILY.name is {family.name!r}; it must equal the file name {stem!r}")
    if family.weight <= 0 or family.chunk_size < 1:
        raise FamilyDefinitionError(f"{where}: weight must be > 0 and chunk_size >= 1")
    return family


def load_family_file(path: Path) -> Family:
    """Import a family module from its file (works for the installed package and for test directories)."""
    path = Path(path).resolve()
    package_dir = Path(__file__).resolve().parent.parent / "kernels"
    if path.parent == package_dir:
        module = importlib.import_module(f"kernels.{path.stem}")
    else:
        name = f"wkf_family_{hashlib.sha256(str(path.parent).encode()).hexdigest()[:8]}_{path.stem}"
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
    return family_from_module(module)


def all_families() -> dict[str, Family]:
    """The families of the ``kernels`` package, by name, sorted."""
    import kernels

    found = {}
    for info in sorted(pkgutil.iter_modules(kernels.__path__), key=lambda i: i.name):
        if info.ispkg or info.name.startswith("_"):
            continue
        family = family_from_module(importlib.import_module(f"kernels.{info.name}"))
        found[family.name] = family
    return found
