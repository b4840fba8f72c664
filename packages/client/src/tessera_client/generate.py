"""Generate `_generated.py`, the typed facade, from the operations tables.

    uv run python -m tessera_client.generate          # rewrite the file
    uv run python -m tessera_client.generate --check  # exit 1 if it is stale

Each operation becomes one method of `V1Operations` (and v2): path parameters
positional, then the body model, then the query and header fields as keyword
arguments. The method only builds the `Call` of the operation constant (its
arguments and the response model); `_facade.performed` makes it awaited on the
async client (`AsyncV1Operations`) and blocking on the sync one
(`SyncV1Operations`), so the request is written once for both and what a
request is stays in the generic core. Event-stream operations are left to the
hand-written `events` of `_versions`.
"""

from __future__ import annotations

import subprocess
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from uuid import UUID

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from tessera_contracts import Operation, v1, v2

TARGET: Final = Path(__file__).with_name("_generated.py")
COMMAND: Final = "uv run python -m tessera_client.generate"
VERSIONS: Final[dict[str, types.ModuleType]] = {"v1": v1, "v2": v2}
_BUILTINS: Final = (str, int, float, bool, bytes)


@dataclass
class _Imports:
    typing_names: set[str] = field(default_factory=set)
    uuid: bool = False


def _module_name(value: object, preferred: str) -> str:
    """`v1.Product`: the name under which a version module exports `value`."""
    order = [preferred, *(name for name in VERSIONS if name != preferred)]
    for version in order:
        for name, exported in vars(VERSIONS[version]).items():
            if exported is value and not name.startswith("_"):
                return f"{version}.{name}"
    raise LookupError(f"{value!r} is not exported by tessera_contracts.{preferred}")


def _annotation(tp: Any, version: str, imports: _Imports) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _annotation(typing.get_args(tp)[0], version, imports)
    if tp is None or tp is type(None):
        return "None"
    if origin in (typing.Union, types.UnionType):
        parts = [_annotation(arg, version, imports) for arg in typing.get_args(tp)]
        return " | ".join(dict.fromkeys(parts))
    if origin is typing.Literal:
        imports.typing_names.add("Literal")
        return f"Literal[{', '.join(repr(arg) for arg in typing.get_args(tp))}]"
    if origin in (list, tuple, dict):
        args = ", ".join(_annotation(arg, version, imports) for arg in typing.get_args(tp))
        return f"{origin.__name__}[{args}]"
    if tp in _BUILTINS:
        return str(tp.__name__)
    if tp is UUID:
        imports.uuid = True
        return "UUID"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return _module_name(tp, version)
    raise TypeError(f"no rendering for the annotation {tp!r}")


@dataclass(frozen=True)
class _Param:
    name: str
    annotation: str
    required: bool
    description: str


def _params(model: type[BaseModel] | None, version: str, imports: _Imports) -> list[_Param]:
    if model is None:
        return []
    return [_param(name, info, version, imports) for name, info in model.model_fields.items()]


def _param(name: str, info: FieldInfo, version: str, imports: _Imports) -> _Param:
    annotation = _annotation(info.annotation, version, imports)
    required = info.is_required()
    if not required and "None" not in annotation.split(" | "):
        # None leaves the parameter out, so the server applies its default.
        annotation += " | None"
    description = (info.description or "").strip().split("\n\n")[0].replace("\n", " ")
    return _Param(name, annotation, required, description)


def _docstring(
    operation: Operation, params: list[_Param], path_names: list[str], indent: str
) -> str:
    lines = _documentation(operation, params, path_names)
    text = "\n".join(f"{indent}{line}" if line else "" for line in lines)
    return f'{indent}"""{text.lstrip()}\n{indent}"""'


def _documentation(operation: Operation, params: list[_Param], path_names: list[str]) -> list[str]:
    lines = [operation.summary]
    if operation.description:
        lines += ["", operation.description]
    lines += ["", f"`{operation.method} {operation.path}`, scope `{operation.scope}`."]
    if any(answer.status == 304 for answer in operation.answers):
        lines.append("A 304 (the ETag in `if_none_match` is current) raises `NotModified`.")
    if params or operation.body:
        described = [(p.name, p.description) for p in params]
        if operation.body is not None:
            doc = (operation.body.__doc__ or "The request body.").strip().splitlines()[0]
            described.insert(len(path_names), ("body", doc))
        lines += ["", "Args:"]
        lines += [f"    {name}: {text or 'See the API reference.'}" for name, text in described]
    lines += ["", "Raises:", "    TesseraError: an error answer."]
    return lines


def _method(operation: Operation, imports: _Imports) -> str:
    version = operation.version
    path = _params(operation.path_params, version, imports)
    query = _params(operation.query, version, imports)
    headers = _params(operation.headers, version, imports)
    names = [p.name for p in (*path, *query, *headers)]
    if len(set(names)) != len(names) or {"self", "body"} & set(names):
        raise ValueError(f"{operation.key}: parameter names collide: {names}")
    signature = ["self", *(f"{p.name}: {p.annotation}" for p in path)]
    if operation.body is not None:
        signature.append(f"body: {_module_name(operation.body, version)}")
    keywords = [*query, *headers]
    if keywords:
        signature.append("*")
        signature += [
            f"{p.name}: {p.annotation}" if p.required else f"{p.name}: {p.annotation} = None"
            for p in sorted(keywords, key=lambda p: not p.required)
        ]
    constant = _module_name(operation, version)
    arguments = []
    for part, params in (("path", path), ("query", query), ("headers", headers)):
        if params:
            items = ", ".join(f'"{p.name}": {p.name}' for p in params)
            arguments.append(f'"{part}": {{{items}}}')
    if operation.body is not None:
        arguments.append('"body": body')
    if operation.response is not None:
        returns = _module_name(operation.response, version)
        answer = f"returning({returns})"
    else:
        returns = "None"
        answer = "no_content"
    call = f"return Call({constant}, {{{', '.join(arguments)}}}, {answer})"
    return "\n".join(
        [
            "    @performed",
            f"    def {operation.id}({', '.join(signature)}) -> Call[{returns}]:",
            _docstring(operation, [*path, *query, *headers], [p.name for p in path], "        "),
            f"        {call}",
        ]
    )


def _class(version: str, imports: _Imports) -> str:
    name = f"{version.upper()}Operations"
    operations = [op for op in VERSIONS[version].OPERATIONS if op.stream is None]
    methods = "\n\n".join(_method(op, imports) for op in operations)
    return (
        f"class {name}(Facade[C]):\n"
        f'    """The {version} operations, one method each (`client.{version}`).\n\n'
        f"    Awaited on `TesseraClient`, blocking on `TesseraSyncClient`.\n"
        f'    """\n\n'
        f"{methods}\n\n\n"
        f"Async{name} = {name}[AsyncCore]\n"
        f"Sync{name} = {name}[SyncCore]\n"
    )


def render() -> str:
    """The module's source, formatted by ruff."""
    imports = _Imports()
    classes = "\n\n".join(_class(version, imports) for version in VERSIONS)
    head = [
        f'"""The typed operations of each API version, generated from the operations tables.\n\n'
        f'Do not edit: regenerate with `{COMMAND}`.\n"""',
        "",
        "from __future__ import annotations",
        "",
    ]
    if imports.typing_names:
        head.append(f"from typing import {', '.join(sorted(imports.typing_names))}")
    if imports.uuid:
        head.append("from uuid import UUID")
    head += [
        "",
        "from tessera_contracts import v1, v2",
        "",
        "from tessera_client._core import AsyncCore, SyncCore",
        "from tessera_client._facade import C, Call, Facade, no_content, performed, returning",
        "",
    ]
    return _ruff_format("\n".join(head) + "\n\n" + classes)


def _ruff_format(source: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(TARGET), "-"],
        input=source,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ruff format failed:\n{result.stderr}")
    return result.stdout


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = render()
    if "--check" in args:
        if TARGET.read_text() != source:
            sys.stderr.write(f"{TARGET} is stale: run `{COMMAND}`\n")
            return 1
        return 0
    TARGET.write_text(source)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
