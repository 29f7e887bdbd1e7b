"""Command files: the YAML header in a docstring or a comment block, and the script below it."""

from __future__ import annotations

import pytest

from runtime.bots.command import (
    MAX_NAME_LENGTH,
    Command,
    check_name,
    parse_command_file,
    split_header,
)
from sandbox import compile_script


def parse_ok(text: str, path: str = "start.py") -> Command:
    """Parse a file that must have no problems."""
    command, problems = parse_command_file(text, path)
    assert problems == [], problems
    assert command is not None
    return command


def problems_of(text: str, path: str = "start.py") -> list[tuple[int | None, str]]:
    """Parse a file that must fail; return each problem's line and message."""
    command, problems = parse_command_file(text, path)
    assert command is None
    assert problems
    assert all(problem.file == path for problem in problems)
    return [(problem.line, problem.message) for problem in problems]


def test_a_docstring_header_gives_every_field_and_the_script_below() -> None:
    """Every header field is read from a leading docstring; the script starts after it."""
    text = (
        '"""\n'
        "command: /start\n"
        "aliases: [/begin, hi]\n"
        "answer: Welcome!\n"
        "keyboard: Yes, No\n"
        "need_reply: true\n"
        "parse_mode: HTML\n"
        "group_only: false\n"
        "description: Greets you.\n"
        '"""\n'
        'Api.sendMessage(text="hi")\n'
    )
    command = parse_ok(text)
    assert command == Command(
        name="/start",
        aliases=("/begin", "hi"),
        answer="Welcome!",
        keyboard="Yes, No",
        need_reply=True,
        parse_mode="HTML",
        group_only=False,
        description="Greets you.",
        source='Api.sendMessage(text="hi")\n',
        first_line=11,
        path="start.py",
    )
    assert command.has_code


def test_a_comment_header_is_read_with_the_hash_prefix_stripped() -> None:
    """A leading block of ``#`` lines is YAML once ``# `` is removed, nesting included."""
    text = "# command: /help\n# aliases:\n#   - /h\n# answer: |\n#   one\n#   two\n\nx = 1\n"
    command = parse_ok(text, "help.py")
    assert command.name == "/help"
    assert command.aliases == ("/h",)
    assert command.answer == "one\ntwo\n"
    assert command.source == "\nx = 1\n"
    assert command.first_line == 7


@pytest.mark.parametrize(
    "text",
    [
        "'''\ncommand: /q\nanswer: hi\n'''\n",
        '\n\n  \n"""\ncommand: /q\nanswer: hi\n"""\n',
        '"""command: /q\n    answer: hi\n    """\n',
        '"""command: /q\nanswer: hi"""\n',
        "\n#command: /q\n#answer: hi\n",
    ],
    ids=["single-quotes", "after-blank-lines", "indented-body", "one-block", "no-space-after-hash"],
)
def test_header_spellings_that_all_mean_the_same(text: str) -> None:
    """Quotes, leading blank lines, indentation and ``#`` without a space all work."""
    command = parse_ok(text)
    assert (command.name, command.answer, command.has_code) == ("/q", "hi", False)


def test_without_a_header_the_name_is_the_file_stem_and_the_file_is_the_script() -> None:
    """A file with no header is all script, named after its file."""
    command = parse_ok("x = 1\n", "bots/menu.py")
    assert (command.name, command.source, command.first_line) == ("menu", "x = 1\n", 1)


@pytest.mark.parametrize(
    "text",
    [
        "# TODO: say something nicer\n# Note: keep it short\nx = 1\n",
        '"""Greets the user: politely."""\nx = 1\n',
        "# just a comment\nx = 1\n",
    ],
    ids=["comment-with-colons", "prose-docstring", "plain-comment"],
)
def test_comments_and_docstrings_without_header_fields_are_not_a_header(text: str) -> None:
    """Only a block naming header fields is a header; other comments stay in the script."""
    command = parse_ok(text, "greet.py")
    assert (command.name, command.source, command.first_line) == ("greet", text, 1)


def test_code_on_the_closing_quotes_line_stays_in_the_script_at_its_line() -> None:
    """Text after the closing quotes is kept, starting at that line of the file."""
    command = parse_ok('"""\ncommand: /x\n"""  # done\ny = 2\n')
    assert (command.source, command.first_line) == ("# done\ny = 2\n", 3)


def test_an_unclosed_docstring_is_left_to_the_compiler() -> None:
    """A docstring that never closes is not a header: the compiler reports it at its line."""
    text = '"""\ncommand: /x\nanswer: hi\n'
    header = split_header(text)
    assert (header.yaml, header.source, header.first_line) == (None, text, 1)
    issue = compile_script(header.source, first_line=header.first_line).issues[0]
    assert (issue.kind, issue.line) == ("SyntaxError", 1)


def test_compile_errors_below_a_header_are_at_the_files_line() -> None:
    """The script's first_line makes compile errors point at the author's file."""
    command = parse_ok('"""\ncommand: /x\n"""\n\nok = 1\nbad = (\n')
    issue = compile_script(command.source, first_line=command.first_line).issues[0]
    assert issue.line == 6


@pytest.mark.parametrize(
    ("aliases", "expected"),
    [
        ("[/a, /b]", ("/a", "/b")),
        ("/a, /b ,, /c", ("/a", "/b", "/c")),
        ("/a", ("/a",)),
        ("", ()),
    ],
    ids=["list", "comma-separated", "single", "empty"],
)
def test_aliases_are_a_list_or_a_comma_separated_string(
    aliases: str, expected: tuple[str, ...]
) -> None:
    """Aliases come as a YAML list or one comma-separated string."""
    command = parse_ok(f"# command: /x\n# aliases: {aliases}\n# answer: hi\n")
    assert command.aliases == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [("HTML", "HTML"), ("html", "HTML"), ("markdownv2", "MarkdownV2"), ("Markdown", "Markdown")],
    ids=["html", "html-lowercase", "markdownv2-lowercase", "markdown"],
)
def test_parse_mode_is_spelled_the_way_telegram_wants(given: str, expected: str) -> None:
    """parse_mode is matched without case and stored in Telegram's spelling."""
    assert parse_ok(f"# command: /x\n# parse_mode: {given}\n# answer: hi\n").parse_mode == expected


def test_an_unknown_field_names_its_line_and_the_closest_field() -> None:
    """A misspelt field is reported at its line with a suggestion."""
    text = '\n"""\ncommand: /x\nanswr: hello\n"""\n'
    assert problems_of(text) == [(4, 'unknown header field "answr" (did you mean "answer"?)')]


def test_an_unknown_field_with_nothing_close_has_no_suggestion() -> None:
    """A field that resembles nothing is reported plainly."""
    assert problems_of("# command: /x\n# colour: red\n# answer: hi\n") == [
        (2, 'unknown header field "colour"')
    ]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('\n\n"""\ncommand: /x\nanswer: [oops\n"""\n', 5, "flow sequence"),
        ("# command: /x\n# answer: hi\n#   bad: indent\nx = 1\n", 3, "mapping values"),
        ('"""\ncommand: /x\nanswer:\n\t- x\n"""\n', 4, "'\\t'"),
        ("# command: /x\n# command: /y\n# answer: hi\n", 2, "given twice (lines 1 and 2)"),
        ('"""\ncommand: /x\n---\ncommand: /y\n"""\n', 3, "single document"),
    ],
    ids=["unclosed-list", "bad-indent", "tab", "repeated-field", "two-documents"],
)
def test_bad_yaml_is_reported_at_the_files_line(text: str, line: int, fragment: str) -> None:
    """YAML errors point at the line of the command file, not of the header."""
    [(found_line, message)] = problems_of(text)
    assert found_line == line
    assert fragment in message


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("command", "42", "must be text"),
        ("answer", "[a, b]", "must be text, not a list"),
        ("keyboard", "{a: 1}", "must be text, not a mapping"),
        ("need_reply", "maybe", "must be true or false, not text"),
        ("group_only", "1", "must be true or false, not a number"),
        ("aliases", "[1, 2]", "must be a list of names"),
        ("aliases", "{a: 1}", "must be a list or a comma-separated text"),
        ("parse_mode", "Textile", "must be one of HTML, Markdown, MarkdownV2"),
        ("description", "3.5", "must be text, not a number"),
    ],
    ids=[
        "command-number",
        "answer-list",
        "keyboard-mapping",
        "need-reply-text",
        "group-only-number",
        "aliases-numbers",
        "aliases-mapping",
        "parse-mode-unknown",
        "description-number",
    ],
)
def test_wrong_types_are_problems_at_the_fields_line(field: str, value: str, fragment: str) -> None:
    """A field of the wrong type is a problem naming the field, at its line."""
    text = f"# answer: fine\n# {field}: {value}\nx = 1\n"
    if field == "answer":
        text = f"# command: /x\n# {field}: {value}\nx = 1\n"
    [(line, message)] = problems_of(text)
    assert line == 2
    assert f'"{field}"' in message
    assert fragment in message


def test_null_fields_count_as_absent() -> None:
    """``answer:`` with no value is the same as no answer field."""
    command = parse_ok("# command: /x\n# answer:\n# description:\nx = 1\n")
    assert (command.answer, command.description) == (None, "")


def test_a_header_only_file_with_an_answer_is_an_answer_only_command() -> None:
    """No code but an answer: the command just answers."""
    command = parse_ok("# command: /about\n# answer: A bot.\n\n# a comment below the header\n")
    assert command.answer == "A bot."
    assert not command.has_code


@pytest.mark.parametrize(
    "text",
    ["# command: /x\n# description: nothing\n", "", "\n\n# only comments\n"],
    ids=["header-only", "empty-file", "comments-only"],
)
def test_a_file_with_neither_code_nor_answer_is_a_problem(text: str) -> None:
    """A command that would do nothing is refused."""
    [(line, message)] = problems_of(text, "x.py")
    assert line is None
    assert "has neither code nor answer" in message


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("' /x'", "starts or ends with whitespace"),
        ("'/x '", "starts or ends with whitespace"),
        ('"/a\\nb"', "line break"),
        ("'/" + "x" * MAX_NAME_LENGTH + "'", "longer than 64"),
        ("''", "is empty"),
    ],
    ids=["leading-space", "trailing-space", "newline", "too-long", "empty"],
)
def test_bad_command_names_are_problems(name: str, fragment: str) -> None:
    """Names must be trimmed, on one line, and at most 64 characters."""
    [(line, message)] = problems_of(f"# command: {name}\n# answer: hi\n")
    assert line == 1
    assert fragment in message


def test_a_name_of_exactly_64_characters_is_fine() -> None:
    """The limit is inclusive."""
    assert check_name("/" + "x" * (MAX_NAME_LENGTH - 1)) is None


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("# command: /x\n# aliases: ['@']\n", "special command and cannot be an alias"),
        ("# command: /x\n# aliases: [/x]\n", "repeats the command name"),
        ("# command: '@'\n# aliases: [/y]\n", 'special command "@" cannot have aliases'),
        ("# command: /x\n# aliases: [' /y']\n", "alias ' /y' starts or ends with whitespace"),
    ],
    ids=["special-alias", "alias-is-name", "special-with-aliases", "bad-alias"],
)
def test_bad_aliases_are_problems_at_the_aliases_line(header: str, fragment: str) -> None:
    """Aliases follow the name rules, cannot be special, and cannot repeat the name."""
    [(line, message)] = problems_of(header + "x = 1\n")
    assert line == 2
    assert fragment in message


@pytest.mark.parametrize(
    ("name", "special"),
    [("@", True), ("@@", True), ("!", True), ("*", True), ("/start", False), ("@x", False)],
    ids=["before", "after", "on-error", "fallback", "slash-command", "at-word"],
)
def test_special_commands_are_recognised_by_name(name: str, special: bool) -> None:
    """``@``, ``@@``, ``!`` and ``*`` are the special commands."""
    assert parse_ok(f"# command: '{name}'\nx = 1\n").is_special is special


@pytest.mark.parametrize(
    ("source", "expected"),
    [("", False), ("\n  \n# note\n   # indented note\n", False), ("# c\nx = 1\n", True)],
    ids=["empty", "blanks-and-comments", "one-statement"],
)
def test_has_code_ignores_blank_lines_and_comments(source: str, expected: bool) -> None:
    """Only a line that is neither blank nor a comment counts as code."""
    assert Command(name="/x", source=source).has_code is expected


def test_every_problem_is_reported_not_just_the_first() -> None:
    """Several bad fields give several problems, in one pass."""
    text = "# comand: /x\n# need_reply: sure\n# parse_mode: rst\nx = 1\n"
    assert [line for line, _ in problems_of(text)] == [1, 2, 3]
