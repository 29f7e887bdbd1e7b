"""Regenerate runtime/telegram/bot_api.json from the full machine-readable Bot API spec.

Usage: python scripts/gen_bot_api.py [SOURCE] [--output PATH] [--check]

SOURCE defaults to ../shared/telegram/bot-api.json relative to the repository root. The output
keeps only what call checking needs (method fields, return types, type fields, union subtypes)
and is deterministic: sorted keys, indent=1, trailing newline.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

logger = logging.getLogger(__name__)

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE: Final = REPO_ROOT / ".." / "shared" / "telegram" / "bot-api.json"
DEFAULT_OUTPUT: Final = REPO_ROOT / "runtime" / "telegram" / "bot_api.json"


def _compact_fields(fields: Sequence[Mapping[str, object]]) -> dict[str, object]:
    """Reduce a list of spec fields to ``{name: {"types": [...], "required": bool}}``."""
    compact: dict[str, object] = {}
    for field in fields:
        name = str(field["name"])
        types = field.get("types", [])
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise TypeError(f"field {name!r} has malformed types: {types!r}")
        compact[name] = {"types": list(types), "required": bool(field.get("required", False))}
    return compact


def compact_spec(source: Mapping[str, object]) -> dict[str, object]:
    """Return the compact, description-free form of a full Bot API spec document."""
    methods_in = source["methods"]
    types_in = source["types"]
    if not isinstance(methods_in, Mapping) or not isinstance(types_in, Mapping):
        raise TypeError("spec must have 'methods' and 'types' objects")
    methods: dict[str, object] = {}
    for name, method in methods_in.items():
        methods[str(name)] = {
            "returns": list(method.get("returns", [])),
            "fields": _compact_fields(method.get("fields", [])),
        }
    types: dict[str, object] = {}
    for name, type_ in types_in.items():
        types[str(name)] = {
            "fields": _compact_fields(type_.get("fields", [])),
            "subtypes": list(type_.get("subtypes", [])),
        }
    return {"version": str(source["version"]), "methods": methods, "types": types}


def render(document: Mapping[str, object]) -> str:
    """Serialise a compact spec deterministically."""
    return json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--check", action="store_true", help="fail if the output file is not up to date"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    source = json.loads(Path(args.source).read_text(encoding="utf-8"))
    text = render(compact_spec(source))
    output: Path = args.output
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            logger.error("%s is out of date; rerun scripts/gen_bot_api.py", output)
            return 1
        logger.info("%s is up to date", output)
        return 0
    output.write_text(text, encoding="utf-8")
    document = json.loads(text)
    logger.info(
        "wrote %s (%s: %d methods, %d types)",
        output,
        document["version"],
        len(document["methods"]),
        len(document["types"]),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
