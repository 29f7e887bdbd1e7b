"""A bot's code as immutable versions (pure): what a version holds, its digest, its check, diffs.

A version is a bot's whole file set: ``bot.yaml`` and its command files, by name, as text. Its
*digest* (SHA-256 over the sorted names and texts) is its content address: two deploys of the
same files have one digest, so deploying unchanged files makes no new version. A deploy is
checked with :func:`check_version`, which is :func:`runtime.bots.folder.inspect_files` (what
``run.py check`` runs) plus the id check; any error refuses the deploy as a whole.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from runtime.bots.config import CONFIG_FILE, parse_config
from runtime.bots.dispatch import CommandTable
from runtime.bots.folder import BotDefinition, BotFiles, inspect_files, lib_modules
from runtime.errors import Problem
from sandbox import JSON

MAX_FILES: Final = 200
"""How many files one version may hold."""


def digest(files: Mapping[str, str]) -> str:
    """The content address of a file set: SHA-256 (hex) over its sorted names and texts."""
    hasher = hashlib.sha256()
    for name in sorted(files):
        for part in (name, files[name]):
            data = part.encode("utf-8", "surrogatepass")
            hasher.update(len(data).to_bytes(8, "big"))
            hasher.update(data)
    return hasher.hexdigest()


def bot_id_of(files: BotFiles, folder_name: str) -> str:
    """The id the files give their bot: ``id`` in ``bot.yaml``, else ``folder_name``."""
    text = files.get(CONFIG_FILE)
    if type(text) is str:
        config = parse_config(text, folder_name)[0]
        if config is not None:
            return config.id
    return folder_name


def check_version(
    bot_id: str, files: BotFiles
) -> tuple[BotDefinition | None, list[Problem], dict[str, str]]:
    """Check a bot's files as one version of ``bot_id``.

    Returns the loaded definition (``None`` when any problem is an error), every problem (file
    and line; warnings too), and the readable files as text (what a version stores).
    """
    problems: list[Problem] = []
    if len(files) > MAX_FILES:
        problems.append(Problem(f"a bot has at most {MAX_FILES} files, not {len(files)}"))
    config, commands, found = inspect_files(files, bot_id)
    problems.extend(found)
    if config is not None and config.id != bot_id:
        problems.append(
            Problem(
                f"bot.yaml names id {config.id!r}, but this is bot {bot_id!r}",
                CONFIG_FILE,
            )
        )
    texts = {name: text for name, text in files.items() if type(text) is str}
    if config is None or any(not problem.warning for problem in problems):
        return None, problems, texts
    definition = BotDefinition(
        config, CommandTable.build(commands), Path(bot_id), lib_modules(files)
    )
    return definition, problems, texts


def unified_diff(
    old: Mapping[str, str], new: Mapping[str, str], *, old_label: str, new_label: str
) -> str:
    """A unified diff of two file sets, file by file in name order ("" when they are equal)."""
    parts: list[str] = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        lines = difflib.unified_diff(
            [] if before is None else before.splitlines(keepends=True),
            [] if after is None else after.splitlines(keepends=True),
            fromfile="/dev/null" if before is None else f"{old_label}/{name}",
            tofile="/dev/null" if after is None else f"{new_label}/{name}",
        )
        for line in lines:
            parts.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(parts)


def problems_to_json(problems: Sequence[Problem]) -> list[JSON]:
    """Problems as plain data (what the store keeps for a refused deploy)."""
    return [
        {"message": p.message, "file": p.file, "line": p.line, "warning": p.warning}
        for p in problems
    ]


def problems_from_json(data: JSON) -> list[Problem]:
    """Problems back from :func:`problems_to_json` (anything malformed is skipped)."""
    found: list[Problem] = []
    if type(data) is not list:
        return found
    for item in data:
        if type(item) is not dict or type(item.get("message")) is not str:
            continue
        file, line = item.get("file"), item.get("line")
        found.append(
            Problem(
                str(item["message"]),
                file if type(file) is str else None,
                line if type(line) is int else None,
                item.get("warning") is True,
            )
        )
    return found
