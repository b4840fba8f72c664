"""The metric names a PromQL expression selects, enough to check them against exports.

A lexer, not a parser: outside label matchers `{...}` and ranges `[...]`, a name
is a metric unless it calls something (`rate(`), is a keyword, or is a label in
a grouping list (`by (le)`). Grafana's variables (`$__rate_interval`,
`${datasource}`) are skipped. A selector with no metric name (`{__name__=~...}`)
is refused: its metrics could not be checked.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<variable>\$\{[^}]*\}|\$\w+)
  | (?P<number>\d[\w.]*)
  | (?P<name>[A-Za-z_:][\w:]*)
  | (?P<open>[({\[])
  | (?P<close>[)}\]])
  | (?P<space>\s+)
  | (?P<operator>[-+*/%^=!<>,@~]+)
    """,
    re.VERBOSE,
)
# Followed by a parenthesised list of label names.
_GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
# Aggregation operators are keywords too: `sum by (le) (...)` has no "(" after `sum`.
_AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"}
    | {"bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)
# Binary operators and modifiers; inf and nan are number literals.
_OTHER_KEYWORDS = frozenset({"bool", "and", "or", "unless", "offset", "atan2", "inf", "nan"})
_KEYWORDS = _GROUPING | _AGGREGATIONS | _OTHER_KEYWORDS


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens = []
    position = 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot read PromQL at {expr[position:]!r}")
        assert match.lastgroup is not None
        if match.lastgroup != "space":
            tokens.append((match.lastgroup, match.group()))
        position = match.end()
    return tokens


def metric_names(expr: str) -> set[str]:
    """Every metric name `expr` selects."""
    tokens = _tokens(expr)
    names = set()
    brackets: list[str] = []
    skip_list = False  # the next "(" opens a grouping list of label names
    for index, (kind, text) in enumerate(tokens):
        following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        if kind == "open":
            if text == "{" and (index == 0 or tokens[index - 1][0] != "name"):
                raise ValueError(f"selector without a metric name in {expr!r}")
            brackets.append("label-list" if text == "(" and skip_list else text)
            skip_list = False
            continue
        if kind == "close":
            brackets.pop()
            continue
        inside = bool(brackets) and brackets[-1] in ("{", "[", "label-list")
        if kind != "name" or inside:
            continue
        word = text.lower()
        if word in _GROUPING:
            skip_list = following == "("
        elif word not in _KEYWORDS and following != "(":
            names.add(text)
    return names
