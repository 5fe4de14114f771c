"""Human approval of tool calls: which calls may run, which wait for a person, and what the person decided.

A policy is an ordered list of rules (tool-name glob, action, optional conditions on the call); the first rule that
applies decides, else the default. Conditions look at the call itself: the Python code's imports, whether it writes
files, whether it reaches the network, a regex over the arguments. The analysis is syntactic (``ast``) and errs on
the safe side: code that does not parse is treated as importing, writing and reaching everything, so a rule that
asks or rejects on a condition still asks or rejects.

The decision a person makes (approve, edit, reject with a reason, end the turn) is an ``ApprovalDecision``; the old
resume values (a bool, "approve"/"reject", ``{"approve": bool, "reason": str}``) are still accepted by ``coerce``.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Awaitable, Callable
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from peerstep._errors import InputError

Action = Literal["auto", "ask", "reject"]
ACTIONS: tuple[str, ...] = ("auto", "ask", "reject")
NETWORK_MODULES = ("socket", "ssl", "urllib", "urllib3", "http", "requests", "httpx", "aiohttp", "ftplib", "smtplib",
                   "websocket", "websockets")
_URL = re.compile(r"https?://", re.IGNORECASE)
_OS_WRITES = {"remove", "unlink", "rename", "renames", "replace", "rmdir", "removedirs", "mkdir", "makedirs",
              "truncate", "chmod", "chown", "symlink", "link", "open", "write", "mkfifo"}
_PATH_WRITES = {"write_text", "write_bytes"}
_OPEN_MODULES = {"io", "codecs", "gzip", "bz2", "lzma", "builtins"}


class ApprovalRule(BaseModel):
    """One rule: calls of tools matching ``tool`` get ``action`` when every condition given holds."""

    tool: str = Field(description="tool-name glob, e.g. 'python' or '*'")
    action: Action
    imports: list[str] = Field(default_factory=list, description="applies when the code imports any of these modules")
    writes_files: bool | None = Field(default=None, description="True: only code that writes files; False: only code "
                                      "that does not")
    network: bool | None = Field(default=None, description="True: only calls that reach the network; False: only "
                                 "calls that do not")
    pattern: str | None = Field(default=None, description="a regex searched in the JSON of the arguments")
    reason: str = Field(default="", description="shown to the model when this rule rejects a call")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern {value!r} is not a valid regex: {exc}") from exc
        return value

    def applies(self, name: str, arguments: dict[str, Any] | str) -> bool:
        if not fnmatch(name, self.tool):
            return False
        arguments = _parsed(arguments)
        facts = CallFacts(arguments)
        if self.imports and not any(facts.imports_module(m) for m in self.imports):
            return False
        if self.writes_files is not None and facts.writes_files != self.writes_files:
            return False
        if self.network is not None and facts.network != self.network:
            return False
        return self.pattern is None or re.search(self.pattern, _dumps(arguments)) is not None

    @property
    def conditional(self) -> bool:
        return bool(self.imports) or any(v is not None for v in (self.writes_files, self.network, self.pattern))

    def describe(self) -> str:
        """``python=ask[imports os,subprocess; writes files]``: the rule as a person reads it."""
        conditions = []
        if self.imports:
            conditions.append("imports " + ",".join(self.imports))
        if self.writes_files is not None:
            conditions.append("writes files" if self.writes_files else "writes no files")
        if self.network is not None:
            conditions.append("network" if self.network else "no network")
        if self.pattern is not None:
            conditions.append(f"matches /{self.pattern}/")
        return f"{self.tool}={self.action}" + (f"[{'; '.join(conditions)}]" if conditions else "")


class ApprovalPolicy(BaseModel):
    """Ordered rules, first match wins; ``default`` for calls no rule covers. The finishing tool is never asked."""

    rules: list[ApprovalRule] = Field(default_factory=list)
    default: Action = "auto"

    @classmethod
    def parse(cls, spec: str) -> ApprovalPolicy:
        """``"python=ask,calculate=auto,*=reject"``: one rule per entry, in order."""
        rules = []
        for entry in (e.strip() for e in spec.split(",")):
            tool, sep, action = (part.strip() for part in entry.partition("="))
            if not sep or not tool or action not in ACTIONS:
                raise InputError(f"bad approval entry {entry!r} in {spec!r}: write TOOL=ACTION (e.g. python=ask), "
                                 f"ACTION one of {', '.join(ACTIONS)}, entries separated by commas")
            rules.append(ApprovalRule(tool=tool, action=action))  # type: ignore[arg-type]
        return cls(rules=rules)

    @classmethod
    def load(cls, path: str | Path) -> ApprovalPolicy:
        """A policy file, YAML or JSON: ``{"default": "auto", "rules": [{"tool": "python", "action": "ask", ...}]}``."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"cannot read the approval policy {path}: {exc.strerror or exc}") from exc
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise InputError(f"the approval policy {path} is not valid YAML or JSON: "
                             f"{str(exc).splitlines()[0]}") from exc
        if not isinstance(data, dict):
            raise InputError(f"the approval policy {path} must be a mapping with 'rules' and 'default'")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "policy"
            raise InputError(f"the approval policy {path} is malformed at {where}: {first['msg']}") from exc

    @classmethod
    def from_option(cls, value: str) -> ApprovalPolicy:
        """A command-line value: a policy file when it names one (or looks like one), else a spec."""
        if Path(value).is_file() or value.lower().endswith((".yaml", ".yml", ".json")):
            return cls.load(value)
        return cls.parse(value)

    def check(self, name: str, arguments: dict[str, Any] | str, *,
              finish_tool: str | None = "submit_answer") -> tuple[str, ApprovalRule | None]:
        """The action for a call, and the rule that decided it (None: the default, or the finishing tool)."""
        if name == finish_tool:
            return "auto", None
        arguments = _parsed(arguments)
        for rule in self.rules:
            if rule.applies(name, arguments):
                return rule.action, rule
        return self.default, None

    def with_rule(self, tool: str, action: Action) -> ApprovalPolicy:
        """A copy with ``tool=action`` first, replacing an unconditional rule for the same glob (``/approve``)."""
        if action not in ACTIONS:
            raise InputError(f"bad approval action {action!r}: choose one of {', '.join(ACTIONS)}")
        kept = [r for r in self.rules if not (r.tool == tool and not r.conditional)]
        return self.model_copy(update={"rules": [ApprovalRule(tool=tool, action=action), *kept]})

    def spec(self) -> str:
        """A short line: ``python=ask, *=auto (default auto)``."""
        rules = ", ".join(r.describe() for r in self.rules)
        return f"{rules} (default {self.default})" if rules else f"default {self.default}"

    def unmatched(self, tool_names: list[str]) -> list[str]:
        """The rules' tool patterns that match none of ``tool_names``: a typo (``calculator`` for ``calculate``)
        would otherwise leave the tool under the default without a word."""
        return [r.tool for r in self.rules if not any(fnmatch(name, r.tool) for name in tool_names)]

    @property
    def allows_all(self) -> bool:
        """True when every call runs without a decision: no call needs checking."""
        return self.default == "auto" and all(r.action == "auto" for r in self.rules)


class ApprovalRequest(BaseModel):
    """A call waiting for a decision (also the interrupt payload, with ``"kind": "approve_tool_call"``)."""

    trajectory_id: int
    call_id: str
    tool: str
    arguments: dict[str, Any] | str
    rule: str = Field(description="why it is asked: the rule that asked, or the default")


class ApprovalDecision(BaseModel):
    """What was decided about one call. ``arguments`` are the edited arguments (``action="edit"``)."""

    action: Literal["approve", "edit", "reject", "end"]
    arguments: dict[str, Any] | None = None
    reason: str = ""
    by: str = "person"

    @classmethod
    def coerce(cls, value: Any) -> ApprovalDecision:
        """A decision from any accepted shape: a decision, its dict, a bool, ``{"approve": bool, "reason": str}``,
        or a word: approve/yes, reject/no, ``reject:REASON``, ``edit:{JSON arguments}``, end/stop."""
        if isinstance(value, ApprovalDecision):
            return value
        if isinstance(value, bool):
            return cls(action="approve" if value else "reject")
        if isinstance(value, dict) and "action" in value:
            try:
                decision = cls.model_validate(value)
            except ValidationError as exc:
                raise InputError(f"bad approval decision {value!r}: {exc.errors()[0]['msg']}") from exc
            if decision.action == "edit" and decision.arguments is None:
                raise InputError(f"bad approval decision {value!r}: 'edit' needs the edited 'arguments'")
            return decision
        if isinstance(value, dict) and "approve" in value:  # the resume value before decisions had actions
            return cls(action="approve" if value["approve"] else "reject", reason=str(value.get("reason") or ""))
        if isinstance(value, str):
            return cls._from_text(value)
        raise InputError(f"bad approval decision {value!r}: give approve, reject[:REASON], edit:{{JSON}} or stop")

    @classmethod
    def _from_text(cls, text: str) -> ApprovalDecision:
        word, _, rest = text.strip().partition(":")
        word = word.strip().lower()
        if word in ("approve", "approved", "yes", "y", "a", "true", "ok"):
            return cls(action="approve")
        if word in ("reject", "rejected", "no", "n", "r", "false", "deny"):
            return cls(action="reject", reason=rest.strip())
        if word in ("end", "stop", "s"):
            return cls(action="end", reason=rest.strip())
        if word in ("edit", "e"):
            try:
                arguments = json.loads(rest)
            except json.JSONDecodeError as exc:
                raise InputError(f"bad edit decision {text!r}: the arguments after 'edit:' must be a JSON object "
                                 f"({exc.msg})") from exc
            if not isinstance(arguments, dict):
                raise InputError(f"bad edit decision {text!r}: the arguments after 'edit:' must be a JSON object")
            return cls(action="edit", arguments=arguments)
        raise InputError(f"bad approval decision {text!r}: give approve, reject[:REASON], edit:{{JSON}} or stop")


Approver = Callable[[ApprovalRequest], ApprovalDecision | Awaitable[ApprovalDecision]]


class CallFacts:
    """What a call's arguments show: modules its code imports, whether it writes files or reaches the network.

    The code is the ``code`` argument (or raw arguments that are not JSON). Network means a network module is
    imported or a URL appears anywhere in the arguments (for code too: ``pd.read_csv("https://…")`` needs no
    import)."""

    def __init__(self, arguments: dict[str, Any] | str) -> None:
        code = arguments.get("code") if isinstance(arguments, dict) else arguments
        self.code = code if isinstance(code, str) else None
        self.unparseable = False
        self.modules: set[str] = set()
        self.writes_files = False
        if self.code is not None:
            try:
                self._scan(ast.parse(self.code))
            except (SyntaxError, ValueError):  # the safe side: it may do anything
                self.unparseable = True
                self.writes_files = True
        urls = _URL.search(_dumps(arguments)) is not None
        self.network = self.unparseable or urls or any(self.imports_module(m) for m in NETWORK_MODULES)

    def imports_module(self, module: str) -> bool:
        return self.unparseable or any(m == module or m.startswith(module + ".") for m in self.modules)

    def _scan(self, tree: ast.AST) -> None:
        from_os_or_shutil: dict[str, str] = {}  # local name -> "os.remove" / "shutil.rmtree"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                self.modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                self.modules.add(node.module)
                self.modules.update(f"{node.module}.{alias.name}" for alias in node.names)
                if node.module in ("os", "shutil"):
                    from_os_or_shutil.update({alias.asname or alias.name: f"{node.module}.{alias.name}"
                                              for alias in node.names})
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                self._scan_call(node, from_os_or_shutil)

    def _scan_call(self, call: ast.Call, imported: dict[str, str]) -> None:
        func = call.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
        if name in ("__import__", "import_module") and call.args:
            first = call.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                self.modules.add(first.value)
            else:  # a module named at run time may be any module
                self.unparseable = True
        qualified = imported.get(name, "") if owner is None else f"{owner}.{name}"
        if (name in _PATH_WRITES or qualified.startswith("shutil.")
                or (qualified.startswith("os.") and qualified[3:] in _OS_WRITES)):
            self.writes_files = True
        elif name == "open":  # a module's open(file, mode) or a path's .open(mode)
            method = isinstance(func, ast.Attribute) and owner not in _OPEN_MODULES
            self.writes_files = self.writes_files or _opens_for_writing(call, method=method)


def _opens_for_writing(call: ast.Call, *, method: bool) -> bool:
    """``open(f, "w")``, ``io.open(f, mode="a")``, ``Path(f).open("x")``: a mode with w, a, x or +; a mode computed
    at run time counts as writing."""
    mode = next((k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None:
        position = 0 if method else 1
        mode = call.args[position] if len(call.args) > position else None
    if mode is None:
        return False
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return any(c in mode.value for c in "wax+")
    return True


def _parsed(arguments: dict[str, Any] | str) -> dict[str, Any] | str:
    """Arguments as a dict when they are a JSON object, else the raw string."""
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments or "{}")
        except json.JSONDecodeError:
            return arguments
        return value if isinstance(value, dict) else arguments
    return arguments


def _dumps(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def rejection_text(reason: str) -> str:
    """What the model sees for a call that did not run."""
    reason = reason.strip().rstrip(".")
    return (f"The call was not approved: {reason}." if reason else "The call was not approved.") + \
        " Do not repeat it; continue another way."
