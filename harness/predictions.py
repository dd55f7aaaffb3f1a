"""The benchmark's input side: tasks, prediction files, the dataset split they refer to, entry functions.

Nothing here imports Warp or compiles: it reads and checks. A predictions file is JSON lines, each validated
against ``predictions.schema.json``; a file that cannot be judged (malformed JSON, schema violation, unknown
id, a task that does not fit the dataset's device) raises :class:`PredictionsError` listing every bad line.
What a model got wrong inside a well-formed line (no forward entry, wrong signature) is judged ``invalid``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import FactoryError

SCHEMA_PATH = Path(__file__).with_name("predictions.schema.json")


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    device: str          # the dataset (and code) the task is about: "cpu" or "cuda"
    lifting: bool        # True: completion is Warp Python; False: completion is generated C++/CUDA


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("py2cpp", "cpu", False), Task("py2cuda", "cuda", False),
    Task("cpp2py", "cpu", True), Task("cuda2py", "cuda", True),
)}


class PredictionsError(FactoryError):
    """A predictions file (or dataset) that cannot be judged; the message names every bad line."""


@dataclass(frozen=True, slots=True)
class Prediction:
    line: int            # 1-based line number in the predictions file
    id: str
    task: str
    completion: str
    sample: int = 0


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def parse_line(text: str, line: int) -> Prediction:
    """One JSON line -> :class:`Prediction`; raises PredictionsError naming the line."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PredictionsError(f"line {line}: malformed JSON ({exc.msg} at column {exc.colno})") from None
    errors = sorted(_validator().iter_errors(obj), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.path) or "(line)"
        if list(err.path) == ["task"]:
            raise PredictionsError(f"line {line}: unknown task {obj.get('task')!r}; known: {', '.join(TASKS)}")
        raise PredictionsError(f"line {line}: {where}: {err.message}")
    return Prediction(line, obj["id"], obj["task"], obj["completion"], int(obj.get("sample", 0)))


def load_predictions(path: Path, records: dict[str, dict], device: str, split: str = "test") -> list[Prediction]:
    """Read and check a predictions file against the records of a ``device`` dataset split."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PredictionsError(f"{path}: cannot read predictions ({exc})") from None
    problems: list[str] = []
    out: list[Prediction] = []
    seen: dict[tuple[str, str, int], int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            pred = parse_line(text, number)
        except PredictionsError as exc:
            problems.append(str(exc))
            continue
        if pred.id not in records:
            problems.append(f"line {number}: unknown id {pred.id} (not in the dataset's {split} split)")
            continue
        if TASKS[pred.task].device != device:
            problems.append(f"line {number}: task {pred.task} is about {TASKS[pred.task].device} code, but the "
                            f"dataset is the {device} one")
            continue
        key = (pred.id, pred.task, pred.sample)
        if key in seen:
            problems.append(f"line {number}: duplicate of line {seen[key]} (same id, task and sample)")
            continue
        seen[key] = number
        out.append(pred)
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise PredictionsError(f"{path}: {len(problems)} bad line(s):\n  " + "\n  ".join(shown))
    if not out:
        raise PredictionsError(f"{path}: no predictions")
    return out


def _plain(value):
    """Parquet rows hold NumPy arrays for lists; make them JSON-able Python values."""
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def load_split(dataset: Path, split: str = "test") -> tuple[str, dict[str, dict]]:
    """The records of one split of a packed dataset folder, by id, and the dataset's device.

    Only the fields the judge uses are required; extra fields are carried along untouched.
    """
    import pyarrow.parquet as pq

    from .pack import unflatten

    dataset = Path(dataset)
    files = sorted((dataset / "data").glob(f"{split}-*.parquet"))
    if not files:
        raise PredictionsError(f"{dataset}: no data/{split}-*.parquet (is it a packed dataset folder?)")
    records: dict[str, dict] = {}
    for path in files:
        for row in pq.read_table(path).to_pylist():
            record = unflatten(_plain(row))
            records[record["id"]] = record
    devices = {r["device"] for r in records.values()}
    if len(devices) != 1:
        raise PredictionsError(f"{dataset}: split {split} mixes devices {sorted(devices)}")
    return devices.pop(), records


def entry_name(kernel_name: str, device: str, kind: str = "forward") -> str:
    """The generated entry function of a kernel (module built with ``strip_hash``: names are the kernel's)."""
    return f"{kernel_name}_{device}_kernel_{kind}"


#: tokens of C++/CUDA text that may hide others, read as the compiler reads them: raw strings (``R"x(...)x"``,
#: which may hold quotes and comment markers; with their prefix), identifiers (so that a number never starts
#: inside one and always starts after one: ``sizeof.1'1`` is a number), numbers (which may hold digit
#: separators, ``1'000``, that are no character literal), comments, strings and character literals
CPP_LITERALS = re.compile(r'(?:u8|[uUL])?R"(?P<delim>[^()\\\s"]{0,16})\(.*?\)(?P=delim)"'
                          r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)"
                          r"|(?P<number>\.?[0-9](?:[eEpP][+-]|'[A-Za-z0-9_]|[A-Za-z0-9_.])*)"
                          r'|//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)
#: what may stand before an entry's name on its line (``static void``, ``extern "C" __global__ void``) and the
#: ``template <...>`` line that may precede it: specifiers, never a declaration of something else
_ENTRY_PREFIX = re.compile(r'[\w\s<>:,*&]*')
_TEMPLATE_LINE = re.compile(r'\s*template\s*<[^;{}()"\'#]*>\s*')


def blank_literals(text: str) -> str:
    """``text`` with its comments and string/character literals replaced by spaces (newlines kept)."""
    return CPP_LITERALS.sub(lambda m: m.group(0) if m.group("ident") else re.sub(r"[^\n]", " ", m.group(0)), text)


def find_entry(text: str, name: str) -> str | None:
    """The definition of function ``name`` in C++/CUDA ``text``: from its declaration (with a ``template <...>``
    line before it, if any) to its matching closing brace, or None when ``text`` does not define it. The
    declaration's line holds only specifiers before the name, and the template line only its parameters, so that
    nothing else at file scope comes along."""
    blanked = blank_literals(text)        # braces in comments/strings do not count
    for match in re.finditer(rf"\b{re.escape(name)}\s*\(", blanked):
        line_start = blanked.rfind("\n", 0, match.start()) + 1
        if not _ENTRY_PREFIX.fullmatch(blanked[line_start:match.start()]):
            continue                # a call, or a definition that smuggles other code onto its line
        i = match.end()
        depth = 1
        while i < len(blanked) and depth:
            depth += {"(": 1, ")": -1}.get(blanked[i], 0)
            i += 1
        rest = blanked[i:]
        body = re.match(r"\s*\{", rest)
        if body is None:            # a declaration or a call, not the definition
            continue
        j = i + body.end()
        depth = 1
        while j < len(blanked) and depth:
            depth += {"{": 1, "}": -1}.get(blanked[j], 0)
            j += 1
        if depth:
            return None
        start = text.rfind("\n", 0, match.start()) + 1
        before = text[:start].rstrip("\n")
        prev_start = before.rfind("\n") + 1
        if _TEMPLATE_LINE.fullmatch(blank_literals(before[prev_start:])):
            start = prev_start
        return text[start:j]
    return None
