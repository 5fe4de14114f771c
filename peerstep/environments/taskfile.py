"""Scripted task files: a scientist's own questions, tools and answer checkers in YAML or JSONL.

A YAML file is a list of tasks, or a mapping with a ``tasks:`` list; a JSONL file has one task object per line::

    tasks:
      - id: ideal-gas                      # optional; default "<file stem>-<n>"
        question: What is the pressure of 2 mol of an ideal gas at 300 K in 10 L, in kPa?
        tools: [calculator, python]        # any of calculator, python, search; default [calculator]
        checker: {type: numeric, rtol: 0.01}
        gold: 498.8
      - question: Simplify (x**2 - 1)/(x - 1).
        checker: math                      # a bare name takes the checker's defaults
        gold: x + 1
      - question: Name a prime between 100 and 110.
        checker: {type: python, function: "checks.py:is_prime_answer"}   # or "package.module:function"

``checker`` is one of ``exact``, ``numeric`` (options ``rtol``, ``atol``), ``math``, ``short_answer`` or ``python``
(option ``function``; a relative file path is read from the task file's folder), or any checker registered in
``peerstep.registry.CHECKERS`` before the file is loaded (its options as written); the default is ``math``. The
options may also sit beside a bare checker name (``checker: numeric`` with ``rtol: 0.01`` on the task).
``gold`` is optional: without it a task is not scored, except by a python checker, which then gets ``""`` as the
gold and judges the answer on its own.

A task file is code, like a pytest ``conftest.py``: a ``python`` checker runs the named file or module with the full
rights of the process that grades. Loading a file never runs it, though: the checker's source is only located and
parsed (``ast``, which executes nothing) so a missing file, a syntax error or a missing function is still reported
up front, and it is imported on first use, when the first answer is graded (``DeferredPythonChecker``).

The whole file is checked before anything runs, and every problem is reported at once in one ``InputError``, each
as ``file:line: task N (id ...): field: what is wrong``, because fixing a 200-task file one error per run is
misery. YAML line numbers come from the composed node tree (``yaml.compose``), so they point at the offending
field, or at the task when a field is missing.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from peerstep._errors import InputError
from peerstep.environments._dataset import register_dataset
from peerstep.environments._tasklist import StaticTask, TaskListDataset
from peerstep.grading import CHECKER_NAMES, Checker, get_checker, parse_number
from peerstep.registry import CHECKERS
from peerstep.tools import Tool, calculator_tool

if TYPE_CHECKING:
    from peerstep.tools.search import SearchIndex

__all__ = ["TOOL_NAMES", "DeferredPythonChecker", "TaskFileDataset", "TaskSpec", "load_task_file"]

YAML_SUFFIXES = (".yaml", ".yml")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
MAX_LISTED_ERRORS = 200  # past this, the message would be longer than anyone reads

# --------------------------------------------------------------------------------------------------------- schema

Tolerance = Annotated[float, Field(ge=0, allow_inf_nan=False)]
ToolName = Literal["calculator", "python", "search"]
TOOL_NAMES: tuple[str, ...] = get_args(ToolName)


def _default_tools() -> list[ToolName]:
    return ["calculator"]


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):  # pydantic reads true as 1.0; a tolerance of "true" is a typo, not a number
        raise ValueError("must be a number, not true/false")
    return value


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExactSpec(_Spec):
    type: Literal["exact"]


class NumericSpec(_Spec):
    type: Literal["numeric"]
    rtol: Tolerance = 1e-6
    atol: Tolerance = 0.0

    @field_validator("rtol", "atol", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        return _no_bool(value)


class MathSpec(_Spec):
    type: Literal["math"]


class ShortAnswerSpec(_Spec):
    type: Literal["short_answer"]


class PythonSpec(_Spec):
    type: Literal["python"]
    function: Annotated[str, Field(min_length=1, description="'package.module:function' or 'file.py:function'")]


class RegisteredSpec(_Spec):
    """A checker registered in ``peerstep.registry.CHECKERS`` under ``name`` (not a built-in one), with the
    options written beside its type; ``get_checker`` checks them when the file is loaded."""

    type: Literal["registered"]
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


CheckerSpec = Annotated[ExactSpec | NumericSpec | MathSpec | ShortAnswerSpec | PythonSpec | RegisteredSpec,
                        Field(discriminator="type")]
_CHECKER_OPTIONS = ("rtol", "atol", "function")


class TaskSpec(_Spec):
    """One task as written in the file (after a bare checker name and task-level options are folded)."""

    id: str | None = None
    question: str
    tools: list[ToolName] = Field(default_factory=_default_tools)
    checker: CheckerSpec = Field(default_factory=lambda: MathSpec(type="math"))
    gold: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _fold_checker(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        checker = data.get("checker")
        if isinstance(checker, str):
            checker = {"type": checker}
            for key in _CHECKER_OPTIONS:
                if key in data:
                    checker[key] = data.pop(key)
        if isinstance(checker, dict) and checker.get("type") not in (*CHECKER_NAMES, None) \
                and checker.get("type") in CHECKERS:  # a user's registered checker: its options go to it as written
            options = {k: v for k, v in checker.items() if k != "type"}
            checker = {"type": "registered", "name": checker["type"], "options": options}
        if "checker" in data:
            data["checker"] = checker
        return data

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("question")
    @classmethod
    def _question_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the question is empty")
        return value.strip()

    @field_validator("gold", mode="before")
    @classmethod
    def _gold_text(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be text or a number, not true/false (quote it: \"true\")")
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError("must be a finite number")
            return repr(value)
        return value


# ------------------------------------------------------------------------------------------------------- locating


@dataclass
class _Entry:
    """One raw task with where it came from: its line, and its YAML node for finding fields' lines."""

    number: int  # 1-based position in the file
    line: int  # 1-based line of the task
    data: Any
    node: yaml.Node | None = None


def _field_line(entry: _Entry, loc: Sequence[str | int]) -> int:
    """The line of the field at ``loc`` inside the entry (the deepest part of the path that exists)."""
    path = _field_path(loc)
    node, line, found = entry.node, entry.line, 0
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
        found += 1
    if found < len(path) and path[0] == "checker" and isinstance(entry.node, yaml.MappingNode):
        # an option written beside a bare checker name ("checker: numeric" + "rtol: x") sits on the task itself
        for k, _ in entry.node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == path[-1]:
                return int(k.start_mark.line) + 1
    return line


def _field_path(loc: Sequence[str | int]) -> list[str | int]:
    parts = list(loc)
    if len(parts) > 1 and parts[0] == "checker" and parts[1] in (*CHECKER_NAMES, "registered"):
        del parts[1]  # the discriminator tag pydantic adds for the union branch
    return parts


def _format_path(parts: Sequence[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _message(err: dict[str, Any]) -> str:
    kind, msg = err.get("type", ""), str(err.get("msg", ""))
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "union_tag_invalid":
        tag = (err.get("ctx") or {}).get("tag", err.get("input"))
        return f"unknown checker {tag!r}; known: {', '.join(CHECKERS)}"
    if kind == "union_tag_not_found":
        return f"needs a 'type' ({', '.join(CHECKERS)})"
    if kind == "literal_error" and "calculator" in msg:
        return f"unknown tool {err.get('input')!r}; known: {', '.join(TOOL_NAMES)}"
    return msg.removeprefix("Value error, ")


# -------------------------------------------------------------------------------------------------------- reading


def _read_yaml(path: Path, text: str) -> list[_Entry]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise InputError(f"{where}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: YAML syntax error: {exc}") from None
    if root is None:
        raise InputError(f"{path}: the file has no tasks")
    items_node, items = root, data
    if isinstance(root, yaml.MappingNode) and isinstance(data, dict):
        extra = sorted(str(k) for k in data if k != "tasks")
        if extra or "tasks" not in data:
            raise InputError(f"{path}:{root.start_mark.line + 1}: expected a list of tasks or a mapping with a "
                             f"'tasks:' list" + (f"; unknown top-level key(s): {', '.join(extra)}" if extra else ""))
        items_node = next(v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == "tasks")
        items = data["tasks"]
    if not isinstance(items_node, yaml.SequenceNode) or not isinstance(items, list):
        raise InputError(f"{path}:{items_node.start_mark.line + 1}: expected a list of tasks (each starting "
                         f"with '- question: ...')")
    return [_Entry(i + 1, node.start_mark.line + 1, item, node)
            for i, (node, item) in enumerate(zip(items_node.value, items, strict=True))]


def _read_jsonl(path: Path, text: str) -> tuple[list[_Entry], list[str]]:
    entries: list[_Entry] = []
    errors: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        number = len(entries) + len(errors) + 1
        try:
            entries.append(_Entry(number, lineno, json.loads(line)))
        except json.JSONDecodeError as exc:
            errors.append(f"{path}:{lineno}: task {number}: not valid JSON: {exc.msg} (column {exc.colno})")
    return entries, errors


# ------------------------------------------------------------------------------------------------ python checkers


class DeferredPythonChecker:
    """A task file's ``python`` checker, imported when it first grades an answer and never before.

    Loading a task file must not run host code (issue 10, item 11): only grading does, which is also when a plain
    ``pytest`` run would import a conftest's fixtures. Building the ``PythonChecker`` is done once, under a lock,
    so concurrent episodes import the file once; if the import fails then, grading raises the ``InputError``.
    """

    def __init__(self, function: str, base_dir: Path) -> None:
        self.spec = function.strip()
        self.base_dir = base_dir
        self._checker: Checker | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> Checker | None:
        """The imported checker, or None while nothing has been graded."""
        return self._checker

    def load(self) -> Checker:
        with self._lock:
            if self._checker is None:
                self._checker = get_checker("python", function=self.spec, base_dir=self.base_dir)
            return self._checker

    def __call__(self, prediction: str, gold: str) -> bool:
        return self.load()(prediction, gold)

    def __repr__(self) -> str:
        return f"DeferredPythonChecker({self.spec!r}, {'imported' if self._checker else 'not imported yet'})"


def _check_python_checker(spec: str, base_dir: Path) -> None:
    """Report what can be known about a python checker without running any of its code; ``InputError`` if wrong.

    The spec is split as ``PythonChecker`` does; a file must exist and parse, a module must be findable (located
    through ``PathFinder``, which never imports a parent package), and when the source is at hand its top level must
    bind the function. A function created dynamically (``from x import *``, ``globals()``) is left for grading.
    """
    spec = spec.strip()
    if spec.endswith(".py"):
        target, name = spec, "check"
    else:
        target, sep, name = spec.rpartition(":")
        if not sep or not target or not name.isidentifier():
            raise InputError(f"python checker {spec!r}: expected 'package.module:function' or "
                             f"'path/to/file.py:function'")
    source: Path | None
    if target.endswith(".py") or "/" in target or "\\" in target:
        source = Path(target).expanduser()
        if not source.is_absolute():
            source = base_dir / source
        if not source.is_file():
            raise InputError(f"python checker {spec!r}: no such file {source}")
    else:
        if not all(part.isidentifier() for part in target.split(".")):
            raise InputError(f"python checker {spec!r}: {target!r} is not a module name")
        source = _module_source(spec, target)
    if source is None:
        return  # a built-in or compiled module: nothing to read, it is checked when imported
    try:
        tree = ast.parse(source.read_bytes(), filename=str(source))
    except SyntaxError as exc:
        raise InputError(f"python checker {spec!r}: {source}:{exc.lineno}: syntax error: {exc.msg}") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"python checker {spec!r}: cannot read {source}: {exc}") from None
    bound, star = _top_level_names(tree)
    if name not in bound and not star:
        functions = sorted(n for n in bound if not n.startswith("_"))
        raise InputError(f"python checker {spec!r}: {source} has no function {name!r}"
                         + (f" (it has: {', '.join(functions[:10])})" if functions else ""))


def _module_source(spec: str, module: str) -> Path | None:
    """The source file of ``module``, found the way import would find it but without importing any package."""
    import sys

    parts = module.split(".")
    if module in sys.modules:  # already imported by someone: nothing new would run
        found = getattr(sys.modules[module], "__file__", None)
        return Path(found) if found and found.endswith(".py") else None
    paths: list[str] | None = None
    found_spec = None
    for i in range(len(parts)):
        name = ".".join(parts[:i + 1])
        found_spec = importlib.machinery.PathFinder.find_spec(name, paths)
        if found_spec is None:
            if i == 0 and importlib.util.find_spec(parts[0]) is not None:
                return None  # a built-in or frozen top-level module (find_spec of a top-level name imports nothing)
            raise InputError(f"python checker {spec!r}: no module named {name!r} (is it installed, or on "
                             f"PYTHONPATH?)")
        paths = list(found_spec.submodule_search_locations or [])
    origin = found_spec.origin if found_spec is not None else None
    return Path(origin) if origin and origin.endswith(".py") else None


def _top_level_names(tree: ast.Module) -> tuple[set[str], bool]:
    """Names a module binds anywhere (defs, classes, assignments, imports: a generous superset of its top level, so
    a function defined under ``if``/``try`` is found), and whether it may make names at run time."""
    names: set[str] = set()
    star = False
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    star = True
                else:
                    names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("globals", "setattr",
                                                                                                   "exec"):
            star = True  # names made at run time: only importing can tell
    return names, star


@dataclass(frozen=True)
class LoadedTask:
    """A validated task, its built checker and the line it came from."""

    spec: TaskSpec
    task_id: str
    checker: Checker
    line: int


def load_task_file(path: str | Path) -> list[LoadedTask]:
    """Read, validate and build every task in ``path``; raise one ``InputError`` listing every problem."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"no task file at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the task file {path}: {exc}") from None
    suffix = path.suffix.lower()
    errors: list[str] = []
    if suffix in JSONL_SUFFIXES:
        entries, errors = _read_jsonl(path, text)
    elif suffix in YAML_SUFFIXES:
        entries = _read_yaml(path, text)
    else:
        raise InputError(f"{path}: a task file must end in {', '.join(YAML_SUFFIXES + JSONL_SUFFIXES)}")

    loaded: list[LoadedTask] = []
    seen_ids: dict[str, int] = {}
    for entry in entries:
        def problem(loc: Sequence[str | int], what: str, entry: _Entry = entry) -> None:
            ident = entry.data.get("id") if isinstance(entry.data, dict) else None
            label = f"task {entry.number}" + (f" (id {ident!r})" if isinstance(ident, str | int) else "")
            field = _format_path(_field_path(loc))
            errors.append(f"{path}:{_field_line(entry, loc)}: {label}: {field + ': ' if field else ''}{what}")

        if not isinstance(entry.data, dict):
            problem((), f"expected a task mapping (question, tools, checker, gold), got {type(entry.data).__name__}")
            continue
        try:
            spec = TaskSpec.model_validate(entry.data)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                problem(loc, _message(dict(err)))
            continue
        if spec.gold is not None and isinstance(spec.checker, NumericSpec) and parse_number(spec.gold) is None:
            problem(("gold",), f"{spec.gold!r} is not a number, but the checker is numeric")
            continue
        task_id = spec.id or f"{path.stem}-{entry.number}"
        if task_id in seen_ids:
            problem(("id",), f"duplicate id {task_id!r} (first used by task {seen_ids[task_id]})")
            continue
        seen_ids[task_id] = entry.number
        checker: Checker
        try:
            if isinstance(spec.checker, PythonSpec):
                # a task file is code, but loading it runs none: the checker is imported when it first grades
                _check_python_checker(spec.checker.function, path.parent)
                checker = DeferredPythonChecker(spec.checker.function, path.parent)
            elif isinstance(spec.checker, RegisteredSpec):
                checker = get_checker(spec.checker.name, **spec.checker.options)
            else:
                checker = get_checker(spec.checker.type, **spec.checker.model_dump(exclude={"type"}))
        except InputError as exc:
            problem(("checker", "function") if isinstance(spec.checker, PythonSpec) else ("checker",), str(exc))
            continue
        loaded.append(LoadedTask(spec, task_id, checker, entry.line))

    if errors:
        shown = errors[:MAX_LISTED_ERRORS]
        more = f"\n  ... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
        raise InputError(f"{path}: {len(errors)} problem(s) in the task file:\n  " + "\n  ".join(shown) + more)
    if not loaded:
        raise InputError(f"{path}: the file has no tasks")
    return loaded


# -------------------------------------------------------------------------------------------------------- dataset


@register_dataset("taskfile")
class TaskFileDataset(TaskListDataset):
    """The tasks of a YAML or JSONL task file, validated up front (see the module docs for the format).

    ``python=False`` withholds the Python tool even from tasks that list it (for a machine without a sandbox);
    ``search_index`` replaces the default offline Wikipedia index for tasks that allow ``search``.
    """

    name = "taskfile"

    def __init__(self, path: str | Path, *, limit: int | None = None, python: bool = True,
                 search_index: SearchIndex | None = None) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InputError(f"limit must be a whole number >= 0 or None, got {limit!r}")
        self.path = Path(path).expanduser()
        self._index = search_index
        loaded = load_task_file(self.path)
        if limit is not None:
            loaded = loaded[:limit]
        # what grading will import and run with this process's rights: a CLI can say so before it starts
        self.python_checkers: list[str] = sorted({t.spec.checker.function for t in loaded
                                                   if isinstance(t.spec.checker, PythonSpec)})
        tasks = []
        for t in loaded:
            tasks.append(StaticTask(
                task_id=t.task_id, question=t.spec.question, gold=t.spec.gold, checker=t.checker,
                tools=self._tools_factory(t.spec.tools), python=python and "python" in t.spec.tools,
                tags={"line": t.line, "checker": t.spec.checker.type, "tools": list(t.spec.tools),
                      "file": str(self.path)},
                check_without_gold=isinstance(t.spec.checker, PythonSpec),
            ))
        super().__init__(tasks)
        self.name = self.path.stem

    def _search_tools(self) -> list[Tool]:
        from peerstep.tools.search import search_tools, wikipedia_index

        if self._index is None:
            self._index = wikipedia_index()
        return search_tools(self._index)

    def _tools_factory(self, names: Sequence[str]) -> Callable[[], list[Tool]]:
        wanted = set(names)

        def build() -> list[Tool]:
            tools: list[Tool] = []
            if "calculator" in wanted:
                tools.append(calculator_tool())
            if "search" in wanted:
                tools.extend(self._search_tools())
            return tools  # python is added by QuestionEnvironment(python=True), bound to its own sandbox

        return build
