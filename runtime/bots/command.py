"""One command file: its YAML header (in a leading docstring or ``#`` block) and its script.

A command file is text, never imported. Its header is YAML in either form::

    \"\"\"
    command: /start
    aliases: [/begin, hi]
    answer: Welcome!
    \"\"\"
    Api.sendMessage(text="hello")

    # command: /help
    # answer: Ask me anything.

Parsing is pure: it returns the :class:`Command` or the :class:`~runtime.errors.Problem` values
found, each located at the line of the author's file.
"""

from __future__ import annotations

import difflib
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from types import MappingProxyType
from typing import Final

import yaml

from runtime.bots.answer import unescapable_placeholders
from runtime.errors import Problem

BEFORE: Final = "@"
AFTER: Final = "@@"
ON_ERROR: Final = "!"
FALLBACK: Final = "*"
SPECIAL_NAMES: Final = frozenset({BEFORE, AFTER, ON_ERROR, FALLBACK})
MAX_NAME_LENGTH: Final = 64
PARSE_MODES: Final = ("HTML", "Markdown", "MarkdownV2")
HEADER_FIELDS: Final = (
    "command",
    "aliases",
    "answer",
    "keyboard",
    "need_reply",
    "parse_mode",
    "group_only",
    "description",
)

_DOC_QUOTES: Final = ('"""', "'''")
_KEY_LINE: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)[ \t]*:(?:\s|$)")
_HEADER_LIKE_CUTOFF: Final = 0.8
_SUGGEST_CUTOFF: Final = 0.6
_KEY_LINE_DEPTH: Final = 2
_MAX_KEY_LINES: Final = 20_000

YamlPath = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Command:
    """One command of a bot: how it is matched, its canned answer, and its script."""

    name: str
    aliases: tuple[str, ...] = ()
    answer: str | None = None
    keyboard: str | None = None
    need_reply: bool = False
    parse_mode: str | None = None
    group_only: bool = False
    description: str = ""
    source: str = ""
    first_line: int = 1
    path: str = ""

    @property
    def has_code(self) -> bool:
        """True when the script has anything but blank lines and comments."""
        return has_code(self.source)

    @property
    def is_special(self) -> bool:
        """True for ``@``, ``@@``, ``!`` and ``*``, which are never matched by text."""
        return self.name in SPECIAL_NAMES


@dataclass(frozen=True, slots=True)
class Header:
    """A command file split in two: the header's YAML text (if any) and the script below it."""

    yaml: str | None
    yaml_line: int
    source: str
    first_line: int


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """A parsed YAML document and the file line of each mapping key (two levels deep)."""

    value: object
    lines: Mapping[YamlPath, int] = field(default_factory=lambda: MappingProxyType({}))

    def line_of(self, *path: str) -> int | None:
        """Return the file line of the key at ``path`` (``None`` when unknown)."""
        return self.lines.get(path)


def has_code(source: str) -> bool:
    """True when ``source`` has a line that is neither blank nor a comment."""
    for line in source.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return True
    return False


def suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    """Return ``' (did you mean "x"?)'`` for the closest choice, or ``''``."""
    close = difflib.get_close_matches(word.lower(), choices, n=1, cutoff=_SUGGEST_CUTOFF)
    return f' (did you mean "{close[0]}"?)' if close else ""


def check_name(name: str, what: str = "command name") -> str | None:
    """Return why ``name`` cannot name a command, or ``None`` when it can."""
    if not name or not name.strip():
        return f"the {what} is empty"
    if name != name.strip():
        return f"the {what} {name!r} starts or ends with whitespace"
    if "\n" in name or "\r" in name:
        return f"the {what} {name!r} contains a line break"
    if len(name) > MAX_NAME_LENGTH:
        return f"the {what} {name[:20]!r}... is longer than {MAX_NAME_LENGTH} characters"
    return None


def split_header(text: str) -> Header:
    """Split a command file into its header YAML and its script, keeping the file's lines."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip()), None)
    if start is None:
        return Header(None, 1, text, 1)
    first = lines[start].lstrip()
    quote = next((q for q in _DOC_QUOTES if first.startswith(q)), None)
    if quote is not None:
        return _split_docstring(text, lines, start, quote)
    if first.startswith("#"):
        return _split_comments(text, lines, start)
    return Header(None, 1, text, 1)


def _split_docstring(text: str, lines: list[str], start: int, quote: str) -> Header:
    """Split off a leading docstring header (an unclosed one is left to the compiler)."""
    offset = sum(len(line) for line in lines[:start])
    opening = offset + lines[start].index(quote)
    closing = text.find(quote, opening + len(quote))
    if closing < 0:
        return Header(None, 1, text, 1)
    body = text[opening + len(quote) : closing]
    head, newline, rest = body.partition("\n")
    yaml_text = head.strip() + newline + textwrap.dedent(rest)
    if not _looks_like_header(yaml_text):
        return Header(None, 1, text, 1)
    closing_line = text.count("\n", 0, closing) + 1
    remainder, newline, after = text[closing + len(quote) :].partition("\n")
    if remainder.strip():
        return Header(yaml_text, start + 1, remainder.lstrip() + newline + after, closing_line)
    return Header(yaml_text, start + 1, after, closing_line + 1)


def _split_comments(text: str, lines: list[str], start: int) -> Header:
    """Split off a leading block of ``#`` lines when it holds header fields."""
    end = start
    stripped: list[str] = []
    while end < len(lines) and lines[end].lstrip().startswith("#"):
        content = lines[end].lstrip()[1:].rstrip("\r\n")
        stripped.append(content.removeprefix(" "))
        end += 1
    yaml_text = "\n".join(stripped) + "\n"
    if not _looks_like_header(yaml_text):
        return Header(None, 1, text, 1)
    return Header(yaml_text, start + 1, "".join(lines[end:]), end + 1)


def _looks_like_header(yaml_text: str) -> bool:
    """True when a top-level ``key:`` line names a header field (or nearly does)."""
    for line in yaml_text.splitlines():
        found = _KEY_LINE.match(line)
        if found is None:
            continue
        key = found.group(1).lower()
        if key in HEADER_FIELDS or difflib.get_close_matches(
            key, HEADER_FIELDS, n=1, cutoff=_HEADER_LIKE_CUTOFF
        ):
            return True
    return False


def load_yaml(
    text: str, *, file: str, first_line: int = 1
) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse one YAML document safely; errors and repeated keys come back at the file's lines."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        value = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        return None, [_yaml_problem(exc, text, file, first_line)]
    except yaml.YAMLError as exc:
        return None, [Problem(f"bad YAML: {exc}", file, first_line)]
    except RecursionError:
        return None, [Problem("bad YAML: nested too deeply", file, first_line)]
    finally:
        loader.dispose()
    lines: dict[YamlPath, int] = {}
    problems: list[Problem] = []
    if node is not None:
        _key_lines(node, (), first_line, file, lines, problems)
    return YamlDocument(value, MappingProxyType(lines)), problems


def _yaml_problem(exc: yaml.MarkedYAMLError, text: str, file: str, first_line: int) -> Problem:
    """Locate a YAML error in the file; an error at the end points where its construct began."""
    last = max(text.count("\n") - (1 if text.endswith("\n") else 0), 0)
    mark = exc.problem_mark
    context = exc.context_mark
    if mark is None or (mark.line > last and context is not None):
        mark = context
    line = first_line + min(mark.line, last) if mark is not None else first_line
    what = exc.problem or "cannot be parsed"
    if exc.context and context is not None:
        what = f"{exc.context} started on line {first_line + context.line}, {what}"
    return Problem(f"bad YAML: {what}", file, line)


def _key_lines(
    node: yaml.Node,
    path: YamlPath,
    first_line: int,
    file: str,
    lines: dict[YamlPath, int],
    problems: list[Problem],
) -> None:
    """Record the line of each mapping key down to a fixed depth (aliases cannot blow it up)."""
    # List indices do not count toward the depth (("schedules", "0", "cron") is two deep), and
    # the number of lines recorded is capped, so aliases cannot blow it up.
    depth = sum(1 for part in path if not part.isdigit())
    if depth >= _KEY_LINE_DEPTH or len(path) > _KEY_LINE_DEPTH or len(lines) >= _MAX_KEY_LINES:
        return
    if isinstance(node, yaml.SequenceNode):  # list items by index: ("schedules", "0", "cron")
        for index, item in enumerate(node.value):
            item_path = (*path, str(index))
            lines.setdefault(item_path, first_line + item.start_mark.line)
            _key_lines(item, item_path, first_line, file, lines, problems)
        return
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        key_path = (*path, str(key_node.value))
        line = first_line + key_node.start_mark.line
        if key_path in lines:
            name = ".".join(key_path)
            problems.append(
                Problem(f'"{name}" is given twice (lines {lines[key_path]} and {line})', file, line)
            )
            continue
        lines[key_path] = line
        _key_lines(value_node, key_path, first_line, file, lines, problems)


def parse_command_file(text: str, path: str) -> tuple[Command | None, list[Problem]]:
    """Parse a command file; return the command, or ``None`` and every problem found."""
    header = split_header(text)
    values, lines, problems = _read_header(header, path)
    given = values.get("command")
    name = given if isinstance(given, str) else PurePath(path).stem
    aliases = values.get("aliases", ())
    aliases = aliases if isinstance(aliases, tuple) else ()
    problems.extend(_name_problems(name, aliases, path, lines))
    answer = _opt_str(values.get("answer"))
    if not has_code(header.source) and answer is None and not problems:
        problems.append(Problem(f'command "{name}" has neither code nor answer', path))
    if answer is not None and values.get("parse_mode") == "Markdown":
        problems.extend(
            Problem(
                f"answer: {placeholder} is inside a Markdown entity, where it cannot be escaped: "
                "a value with _ * ` or [ makes Telegram refuse the whole answer; use parse_mode "
                "MarkdownV2 or HTML, or move it out of the entity",
                path,
                lines.get(("answer",)),
                warning=True,
            )
            for placeholder in unescapable_placeholders(answer)
        )
    if any(not problem.warning for problem in problems):
        return None, problems
    command = Command(
        name=name,
        aliases=aliases,
        answer=answer,
        keyboard=_opt_str(values.get("keyboard")),
        need_reply=values.get("need_reply") is True,
        parse_mode=_opt_str(values.get("parse_mode")),
        group_only=values.get("group_only") is True,
        description=_opt_str(values.get("description")) or "",
        source=header.source,
        first_line=header.first_line,
        path=path,
    )
    return command, problems


def _read_header(
    header: Header, path: str
) -> tuple[dict[str, object], Mapping[YamlPath, int], list[Problem]]:
    """Parse and type-check the header's fields; ``null`` fields count as absent."""
    if header.yaml is None:
        return {}, {}, []
    doc, problems = load_yaml(header.yaml, file=path, first_line=header.yaml_line)
    if doc is None:
        return {}, {}, problems
    if not isinstance(doc.value, dict):
        problems.append(Problem("the header must be a mapping of fields", path, header.yaml_line))
        return {}, doc.lines, problems
    values: dict[str, object] = {}
    for key, value in doc.value.items():
        line = doc.line_of(str(key))
        check = _FIELD_CHECKS.get(key) if isinstance(key, str) else None
        if check is None:
            hint = suggest(str(key), HEADER_FIELDS)
            problems.append(Problem(f'unknown header field "{key}"{hint}', path, line))
            continue
        converted = check(value)
        if isinstance(converted, _Bad):
            problems.append(Problem(f'header field "{key}" {converted.reason}', path, line))
        elif converted is not None:
            values[key] = converted
    return values, doc.lines, problems


def _name_problems(
    name: str, aliases: tuple[str, ...], path: str, lines: Mapping[YamlPath, int]
) -> list[Problem]:
    """Check the command's name and aliases."""
    problems: list[Problem] = []
    reason = check_name(name)
    if reason is not None:
        problems.append(Problem(reason, path, lines.get(("command",))))
    alias_line = lines.get(("aliases",))
    if aliases and name in SPECIAL_NAMES:
        problems.append(
            Problem(f'the special command "{name}" cannot have aliases', path, alias_line)
        )
    for alias in aliases:
        reason = check_name(alias, "alias")
        if reason is None and alias in SPECIAL_NAMES:
            reason = f'"{alias}" is a special command and cannot be an alias'
        if reason is None and alias == name:
            reason = f'the alias "{alias}" repeats the command name'
        if reason is not None:
            problems.append(Problem(reason, path, alias_line))
    return problems


@dataclass(frozen=True, slots=True)
class _Bad:
    """A header value of the wrong type, with the reason."""

    reason: str


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _text(value: object) -> object:
    """Check a text field; ``null`` means absent."""
    if value is None or isinstance(value, str):
        return value
    return _Bad(f"must be text, not {_type_name(value)} (quote it)")


def _flag(value: object) -> object:
    """Check a true/false field; ``null`` means absent."""
    if value is None or isinstance(value, bool):
        return value
    return _Bad(f"must be true or false, not {_type_name(value)}")


def _aliases(value: object) -> object:
    """Accept a list of names or one comma-separated string; return a tuple."""
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list):
        if all(isinstance(item, str) for item in value):
            return tuple(value)
        return _Bad("must be a list of names (text)")
    return _Bad(f"must be a list or a comma-separated text, not {_type_name(value)}")


def _parse_mode(value: object) -> object:
    """Accept HTML, Markdown or MarkdownV2 in any case; return the canonical spelling."""
    if value is None:
        return None
    if isinstance(value, str):
        for mode in PARSE_MODES:
            if value.lower() == mode.lower():
                return mode
    return _Bad(f"must be one of {', '.join(PARSE_MODES)}, not {value!r}")


def _type_name(value: object) -> str:
    names = {
        str: "text",
        bool: "true/false",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "a mapping",
    }
    return names.get(type(value), f"a {type(value).__name__}")


_FIELD_CHECKS: Final[Mapping[str, Callable[[object], object]]] = MappingProxyType(
    {
        "command": _text,
        "aliases": _aliases,
        "answer": _text,
        "keyboard": _text,
        "need_reply": _flag,
        "parse_mode": _parse_mode,
        "group_only": _flag,
        "description": _text,
    }
)
