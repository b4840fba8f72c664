"""A small Dockerfile reader: stages, their instructions, and what a stage inherits.

No Docker engine runs here, so the tests read the Dockerfile the way BuildKit
would: line continuations joined, comments dropped, global ARG defaults
substituted into FROM, and a stage built FROM another stage inheriting its
ENV, USER and CMD.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VARIABLE = re.compile(
    r"\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    """Upper case: RUN, COPY, ENV, ..."""
    arguments: str
    """The rest of the (joined) line, flags included."""

    @property
    def flags(self) -> dict[str, str]:
        """Leading `--name=value` flags (COPY --from=..., RUN --mount=...)."""
        found: dict[str, str] = {}
        for token in shlex.split(self.arguments):
            if not token.startswith("--"):
                break
            name, _, value = token[2:].partition("=")
            found[name] = value
        return found

    @property
    def operands(self) -> list[str]:
        """The words after the flags."""
        tokens = shlex.split(self.arguments)
        while tokens and tokens[0].startswith("--"):
            tokens.pop(0)
        return tokens

    def exec_form(self) -> list[str] | None:
        """The JSON array of CMD/ENTRYPOINT/RUN, or None for the shell form."""
        text = self.arguments.strip()
        if not text.startswith("["):
            return None
        parsed = json.loads(text)
        assert isinstance(parsed, list)
        assert all(isinstance(item, str) for item in parsed)
        return parsed


@dataclass
class Stage:
    name: str | None
    base: str
    """FROM operand with global ARG defaults substituted: an image or a stage name."""
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        return cls.parse(path.read_text())

    @classmethod
    def parse(cls, text: str) -> Dockerfile:
        global_args: dict[str, str] = {}
        stages: list[Stage] = []
        for keyword, arguments in _logical_lines(text):
            if keyword == "FROM":
                operands = [w for w in arguments.split() if not w.startswith("--platform")]
                base = _substitute(operands[0], global_args)
                name = operands[2] if len(operands) == 3 and operands[1].upper() == "AS" else None
                stages.append(Stage(name, base))
            elif not stages:
                # Before the first FROM only ARG is allowed; its default feeds FROM lines.
                assert keyword == "ARG", f"{keyword} before the first FROM"
                key, _, default = arguments.partition("=")
                global_args[key.strip()] = default.strip()
            else:
                stages[-1].instructions.append(Instruction(keyword, arguments))
        return cls(global_args, stages)

    def stage(self, name: str) -> Stage:
        matches = [s for s in self.stages if s.name == name]
        assert len(matches) == 1, f"expected one stage named {name!r}, found {len(matches)}"
        return matches[0]

    def has_stage(self, name: str) -> bool:
        return any(s.name == name for s in self.stages)

    def lineage(self, name: str) -> list[Stage]:
        """The stage and the stages it is built FROM, outermost first."""
        chain = [self.stage(name)]
        while self.has_stage(chain[0].base):
            chain.insert(0, self.stage(chain[0].base))
        return chain

    def base_image(self, name: str) -> str:
        """The image at the root of a stage's lineage."""
        return self.lineage(name)[0].base

    def instructions(self, name: str) -> list[Instruction]:
        """Every instruction that shapes the stage's filesystem and config, in order."""
        return [i for stage in self.lineage(name) for i in stage.instructions]

    def instructions_all(self) -> list[Instruction]:
        """Every instruction of every stage."""
        return [i for stage in self.stages for i in stage.instructions]

    def last(self, name: str, keyword: str) -> Instruction | None:
        found = [i for i in self.instructions(name) if i.keyword == keyword]
        return found[-1] if found else None

    def environment(self, name: str) -> dict[str, str]:
        """ENV as the stage's containers see it (later ENV wins, $VAR expanded)."""
        env: dict[str, str] = {}
        for instruction in self.instructions(name):
            if instruction.keyword != "ENV":
                continue
            for token in shlex.split(instruction.arguments):
                key, sep, value = token.partition("=")
                assert sep, f"ENV {instruction.arguments!r}: use the KEY=value form"
                env[key] = _substitute(value, env, keep_unknown=True)
        return env


def _logical_lines(text: str) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        # Comment lines (parser directives included) vanish, even inside a continuation.
        if stripped.startswith("#"):
            continue
        if not stripped and not pending:
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        line = (pending + stripped).strip()
        pending = ""
        if line:
            keyword, _, arguments = line.partition(" ")
            lines.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a line continuation"
    return lines


def _substitute(text: str, variables: dict[str, str], *, keep_unknown: bool = False) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group("braced") or match.group("plain")
        if key in variables:
            return variables[key]
        assert keep_unknown, f"${key} has no default"
        return match.group(0)

    return _VARIABLE.sub(replace, text)
