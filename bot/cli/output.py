"""What a command prints: tables and `key: value` records for people, JSON for scripts.

Standard output carries the answer and nothing else; notes meant for a person
("(none)") go to standard error. Imports nothing heavy: `--help` loads this module.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO


def common_flags(command: argparse.ArgumentParser, *, json_output: bool = True) -> None:
    """`--json` (when the command answers something) and `--verbose` on a leaf command.

    `--verbose` defaults to SUPPRESS so that `chancenter -v users list` is not undone by
    the sub-command's own default."""
    if json_output:
        command.add_argument(
            "--json", action="store_true", help="print the answer as JSON (for scripts)"
        )
    command.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="also print log lines (to standard error)",
    )


def emit(body: Any, as_json: bool = False, out: TextIO | None = None) -> None:
    """Print an API answer: JSON as is, or a table (lists) or a record (objects)."""
    out = out or sys.stdout
    if as_json:
        if body is not None:  # nothing to say after a 204: an empty answer
            out.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
        return
    if body is None:
        out.write("done\n")
    elif isinstance(body, dict) and isinstance(body.get("items"), list):
        _listing(body, out)
    elif isinstance(body, list):
        _listing({"items": body}, out)
    elif isinstance(body, dict):
        record(body, out)
    else:
        out.write(f"{body}\n")


def table(items: list[dict[str, Any]], out: TextIO) -> None:
    """A header and one row an item: aligned on a terminal, tab-separated in a pipe."""
    columns: list[str] = []
    for item in items:
        columns += [key for key in item if key not in columns]
    rows = [columns, *([_cell(item.get(c)) for c in columns] for item in items)]
    if _is_tty(out):
        widths = [max(len(row[n]) for row in rows) for n in range(len(columns))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
        out.write("".join(line.rstrip() + "\n" for line in lines))
    else:
        out.write("".join("\t".join(row) + "\n" for row in rows))


def record(body: dict[str, Any], out: TextIO) -> None:
    """`key: value` lines; lists of objects follow as tables, nested objects as YAML."""
    flat = {k: v for k, v in body.items() if not _nested(v)}
    width = max((len(k) for k in flat), default=0) + 1
    for key, value in flat.items():
        out.write(f"{key + ':':<{width}} {_scalar(value)}\n")
    for key, value in body.items():
        if key in flat:
            continue
        out.write(f"\n{key}:\n")
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            table(value, out)
        else:
            import yaml  # only for the nested parts of a record (a survey's definition)

            dumped = yaml.safe_dump(
                value, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
            )
            out.write("".join(f"  {line}\n" for line in dumped.splitlines()))


def _listing(body: dict[str, Any], out: TextIO) -> None:
    items = body["items"]
    if items:
        table(items, out)
    else:
        print("(none)", file=sys.stderr)
    summary = [
        _summary(key, value)
        for key, value in body.items()
        if key != "items" and not key.startswith("next_")  # cursors: in --json
    ]
    if summary:
        out.write(("\n" if items else "") + "".join(f"{line}\n" for line in summary))


def _summary(key: str, value: Any) -> str:
    """A list's figures, as a person reads them: `12 in all`, `completion rate: 50%`."""
    if key == "count":
        return f"{value} in all"
    label = key.replace("_", " ")
    if isinstance(value, dict):
        return f"{label}: " + ", ".join(f"{k} {_scalar(v)}" for k, v in value.items())
    if key.endswith("_rate") and isinstance(value, int | float):
        return f"{label}: {value:.0%}"
    return f"{label}: {_scalar(value)}"


def _nested(value: Any) -> bool:
    return bool(value) and (
        isinstance(value, dict)
        or (isinstance(value, list) and not all(isinstance(v, str | int | float) for v in value))
    )


def _scalar(value: Any) -> str:
    if value is None or value == [] or value == {}:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return _cell(value)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    # one item, one line: a name with a tab or newline must not shift the columns
    return text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _is_tty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False
