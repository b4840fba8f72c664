"""One runner for every load scenario.

    uv run python -m bench.run                      # every scenario
    uv run python -m bench.run gateway catalog      # some of them
    uv run python -m bench.run --quick inference    # short rounds, for a smoke check
    uv run python -m bench.run --write gateway      # also replace its section in BENCHMARKS.md
    uv run python -m bench.run --write faults       # ... in docs/reliability.md (its DOCUMENT)

Each scenario is a module `bench/scenarios/<name>.py` with `run(quick: bool) -> str`
that returns a Markdown section (its own baseline included, measured in the same run),
or raises `ScenarioFailed` with that section (printed and written all the same, exit
status 1) when what it checks did not hold. A module-level `DOCUMENT` path names
where `--write` puts it (default BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import scenarios
from bench.harness import REPO_ROOT, BenchError, ScenarioFailed, machine_summary

BENCHMARKS_MD = REPO_ROOT / "BENCHMARKS.md"


def available() -> list[str]:
    return sorted(module.name for module in pkgutil.iter_modules(scenarios.__path__))


def replace_section(document: str, name: str, section: str) -> str:
    """Swap the text between this scenario's markers, or append it."""
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    block = f"{begin}\n{section.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(document):
        return pattern.sub(lambda _: block, document)
    return document.rstrip() + "\n\n" + block + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("scenarios", nargs="*", help=f"default: all of {', '.join(available())}")
    parser.add_argument(
        "--quick", action="store_true", help="short rounds (numbers not for BENCHMARKS.md)"
    )
    parser.add_argument(
        "--write", action="store_true", help="update BENCHMARKS.md (or the scenario's DOCUMENT)"
    )
    args = parser.parse_args(argv)

    names = args.scenarios or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(available())}")

    failed = False
    for name in names:
        module = importlib.import_module(f"bench.scenarios.{name}")
        started = time.monotonic()
        print(f"== {name} ({'quick' if args.quick else 'full'}) ==", file=sys.stderr, flush=True)
        try:
            section: str = module.run(args.quick)
        except ScenarioFailed as error:
            # The report says which checks failed: printed and recorded like any other,
            # so a document never shows older, better figures than the code earns.
            print(f"{name}: FAILED: {error}", file=sys.stderr)
            section = error.section
            failed = True
        except BenchError as error:
            print(f"{name}: could not run: {error}", file=sys.stderr)
            failed = True
            continue
        stamp = datetime.now(UTC).strftime("%Y-%m-%d")
        command = f"uv run python -m bench.run {'--quick ' if args.quick else ''}{name}"
        section = (
            f"{section.strip()}\n\n_Measured {stamp} on {machine_summary()}; "
            f"command: `{command}`; took {time.monotonic() - started:.0f} s._"
        )
        print(section, flush=True)
        if args.write:
            if args.quick:
                print("--write ignored for --quick runs", file=sys.stderr)
            else:
                # A scenario may keep its figures in a document of its own.
                target: Path = getattr(module, "DOCUMENT", BENCHMARKS_MD)
                document = target.read_text() if target.exists() else ""
                target.write_text(replace_section(document, name, section))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
