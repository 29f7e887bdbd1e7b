"""Bot folders: bot.yaml, the command files, and every problem reported at its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.bots.config import BotConfig, PageBranding, PropertyLimits, RunLimits
from runtime.bots.dispatch import find
from runtime.bots.folder import bot_folders, check_bot, check_folders, load_bot
from runtime.errors import BotFolderError, ConfigError, Problem
from runtime.signing.links import ClickRate, WebhookSettings
from sandbox import Limits
from sandbox.limits import KIB, MIB

FIXTURES = Path(__file__).parent.parent / "fixtures"
GOOD_CONFIG = "token_env: BOT_TOKEN\n"


def make_bot(root: Path, files: dict[str, str | bytes], name: str = "mybot") -> Path:
    """Write a bot folder under ``root`` and return it."""
    folder = root / name
    folder.mkdir()
    for filename, content in files.items():
        path = folder / filename
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def located(problems: list[Problem]) -> list[tuple[str | None, int | None, str]]:
    """The problems as (file, line, message) triples."""
    return [(problem.file, problem.line, problem.message) for problem in problems]


def test_the_good_example_bot_loads_with_everything_converted() -> None:
    """The example bot loads: config values, converted limits, and its commands."""
    bot = load_bot(FIXTURES / "goodbot")
    assert bot.folder == FIXTURES / "goodbot"
    assert bot.config == BotConfig(
        id="goodbot",
        token_env="GOODBOT_TOKEN",
        name="Good Bot",
        username="GoodBot",
        limits=Limits(
            cpu_seconds=0.5, wall_seconds=5.0, memory_bytes=64 * MIB, output_bytes=16 * KIB
        ),
        properties=PropertyLimits(max_value_bytes=1024, max_bot_bytes=10 * MIB),
        runs=RunLimits(max_pending=50, max_generations=10),
        webhook=WebhookSettings(per_link=ClickRate(10, 60), allow_http_redirects=True),
        settings={"greeting": "Hello", "admins": [1001]},
        pages=PageBranding(title="Good Bot", link="https://t.me/GoodBot"),
    )
    assert [c.name for c in bot.commands.commands] == ["*", "/help", "/start"]
    start = find(bot.commands, "/start")
    assert start is not None
    assert (start.aliases, start.first_line, start.path) == (("/begin", "hi"), 6, "start.py")
    help_command = find(bot.commands, "/help")
    assert help_command is not None
    assert help_command.answer == "<b>/start</b> greets you.\n<b>/help</b> shows this.\n"
    assert not help_command.has_code
    assert bot.commands.fallback is not None and bot.commands.fallback.path == "fallback.py"


def test_the_good_example_bot_has_no_problems() -> None:
    """check_bot on a valid folder returns nothing."""
    assert check_bot(FIXTURES / "goodbot") == []


BAD_PROBLEMS = [
    ("bot.yaml", 3, 'unknown setting "webhok" (did you mean "webhook"?)'),
    ("bot.yaml", 6, 'unknown limit "cpu_secs" (did you mean "cpu_seconds"?)'),
    ("bot.yaml", 7, "limit \"memory_mb\" must be a number, not 'lots'"),
    ("bot.yaml", 9, "this looks like a Telegram bot token"),
    ("badyaml.py", 3, "bad YAML: while parsing a flow sequence started on line 3"),
    ("dup_b.py", None, '"/dup" is already used by dup_a.py'),
    ("noanswer.py", None, 'command "/silent" has neither code nor answer'),
    ("policy.py", 4, 'PolicyError: "__class__" is an invalid attribute name'),
    ("syntax.py", 6, "SyntaxError: expected ':'"),
    ("types.py", 3, 'header field "need_reply" must be true or false'),
    ("typo.py", 2, 'unknown header field "anwser" (did you mean "answer"?)'),
]


@pytest.mark.parametrize(
    ("file", "line", "fragment"),
    BAD_PROBLEMS,
    ids=[
        "unknown-setting",
        "unknown-limit",
        "bad-limit-value",
        "token-in-bot-yaml",
        "bad-header-yaml",
        "duplicate-name",
        "neither-code-nor-answer",
        "policy-violation",
        "syntax-error",
        "wrong-type",
        "unknown-header-field",
    ],
)
def test_the_broken_example_bot_reports_each_problem_at_its_file_and_line(
    file: str, line: int | None, fragment: str
) -> None:
    """Each planted problem is reported with the right file and line."""
    found = located(check_bot(FIXTURES / "badbot"))
    assert any(f == file and n == line and fragment in m for f, n, m in found), found


def test_the_broken_example_bot_reports_nothing_else() -> None:
    """Exactly the planted problems: ignored files (``_x.py``, ``.x.py``, ``*.txt``) add none."""
    assert len(check_bot(FIXTURES / "badbot")) == len(BAD_PROBLEMS)


def test_loading_a_broken_bot_raises_with_every_problem() -> None:
    """load_bot raises BotFolderError listing the same problems as check_bot."""
    with pytest.raises(BotFolderError) as caught:
        load_bot(FIXTURES / "badbot")
    assert list(caught.value.problems) == check_bot(FIXTURES / "badbot")
    assert "typo.py:2:" in str(caught.value)


def test_a_leaked_token_is_not_repeated_in_the_problem() -> None:
    """The problem names the line, never the secret itself."""
    problems = check_bot(FIXTURES / "badbot")
    assert not any("this-is-not-a-real-token" in problem.describe() for problem in problems)


def test_only_python_files_directly_in_the_folder_are_commands(tmp_path: Path) -> None:
    """Subfolders, other extensions, ``_private`` and ``.hidden`` files are ignored."""
    folder = make_bot(
        tmp_path,
        {
            "bot.yaml": GOOD_CONFIG,
            "start.py": "# command: /start\n# answer: hi\n",
            "_lib.py": "broken (",
            ".swap.py": "broken (",
            "notes.md": "# command: /notes\n",
        },
    )
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.py").write_text("broken (", encoding="utf-8")
    (folder / "dir.py").mkdir()
    bot = load_bot(folder)
    assert [c.name for c in bot.commands.commands] == ["/start"]


def test_a_command_without_a_header_is_named_after_its_file(tmp_path: Path) -> None:
    """No ``command`` field: the file stem is the name."""
    bot = load_bot(make_bot(tmp_path, {"bot.yaml": GOOD_CONFIG, "menu.py": "shown = 1\n"}))
    assert find(bot.commands, "menu") is not None


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"a.py": "# command: /x\n# answer: a\n", "b.py": "# command: /X\n# answer: b\n"},
            '"/X" is already used by a.py',
        ),
        (
            {
                "a.py": "# command: /x\n# answer: a\n",
                "b.py": "# command: /y\n# aliases: /x\n# answer: b\n",
            },
            '"/x" is already used by a.py',
        ),
        (
            {
                "a.py": "# command: /x\n# aliases: /z\n# answer: a\n",
                "b.py": "# command: /y\n# aliases: /z\n# answer: b\n",
            },
            '"/z" is already used by a.py',
        ),
    ],
    ids=["name-twice", "alias-equals-a-name", "alias-twice"],
)
def test_duplicate_names_and_aliases_name_both_files(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    """The second file using a name or alias is reported, naming the first."""
    problems = check_bot(make_bot(tmp_path, {"bot.yaml": GOOD_CONFIG, **files}))
    assert located(problems) == [("b.py", None, expected)]


def test_compile_errors_are_at_the_lines_of_the_file(tmp_path: Path) -> None:
    """Compile errors below either header form point at the author's lines."""
    folder = make_bot(
        tmp_path,
        {
            "bot.yaml": GOOD_CONFIG,
            "doc.py": '"""\ncommand: /doc\n"""\n\nok = 1\nbad = x._secret\n',
            "hash.py": "# command: /hash\n\nok = (\n",
        },
    )
    found = located(check_bot(folder))
    assert [(f, n) for f, n, _ in found] == [("doc.py", 6), ("hash.py", 3)]
    assert "SyntaxError" in found[1][2]


def test_a_script_is_compiled_even_when_its_header_is_broken(tmp_path: Path) -> None:
    """Header problems and compile errors of one file are all reported."""
    folder = make_bot(
        tmp_path, {"bot.yaml": GOOD_CONFIG, "x.py": "# command: /x\n# colour: red\n\ny = (\n"}
    )
    assert [(f, n) for f, n, _ in located(check_bot(folder))] == [("x.py", 2), ("x.py", 4)]


def test_a_file_that_is_not_utf8_is_reported_at_the_bad_line(tmp_path: Path) -> None:
    """Latin-1 bytes are a problem on the line where they are."""
    folder = make_bot(
        tmp_path, {"bot.yaml": GOOD_CONFIG, "caf.py": b"# answer: ok\n\nx = 'caf\xe9'\n"}
    )
    assert located(check_bot(folder)) == [("caf.py", 3, "the file is not UTF-8 text (byte 22)")]


def test_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    """Editors that write a UTF-8 BOM do not break the header."""
    folder = make_bot(
        tmp_path, {"bot.yaml": GOOD_CONFIG, "a.py": "\ufeff# command: /a\n# answer: hi\n"}
    )
    assert find(load_bot(folder).commands, "/a") is not None


@pytest.mark.skipif(not Path("/proc/self/mem").is_file(), reason="needs Linux procfs")
def test_a_file_that_cannot_be_read_is_a_problem(tmp_path: Path) -> None:
    """A read error is reported for that file (here a link to memory that cannot be read at 0)."""
    folder = make_bot(tmp_path, {"bot.yaml": GOOD_CONFIG})
    (folder / "mem.py").symlink_to("/proc/self/mem")
    [(file, line, message)] = located(check_bot(folder))
    assert (file, line) == ("mem.py", None)
    assert message.startswith("cannot read the file")


def test_a_huge_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    """Command files over the size limit are a problem, not a memory spike."""
    folder = make_bot(tmp_path, {"bot.yaml": GOOD_CONFIG, "big.py": "x = 1\n" * 100_000})
    [(file, _, message)] = located(check_bot(folder))
    assert file == "big.py"
    assert "larger than" in message


def test_a_missing_bot_yaml_is_a_problem(tmp_path: Path) -> None:
    """A folder without bot.yaml is not a bot."""
    folder = make_bot(tmp_path, {"start.py": "# answer: hi\n"})
    assert located(check_bot(folder)) == [("bot.yaml", None, "the file is missing")]


def test_a_path_that_is_not_a_folder_is_a_problem(tmp_path: Path) -> None:
    """check_bot on a file or a missing path says so."""
    [problem] = check_bot(tmp_path / "nope")
    assert "is not a directory" in problem.message


def test_the_id_defaults_to_the_folder_name(tmp_path: Path) -> None:
    """Without ``id``, the folder's name is the bot's id, and its name."""
    bot = load_bot(make_bot(tmp_path, {"bot.yaml": GOOD_CONFIG}, name="shop-bot_2"))
    assert (bot.config.id, bot.config.name) == ("shop-bot_2", "shop-bot_2")


def test_a_folder_name_that_is_not_an_id_needs_an_explicit_id(tmp_path: Path) -> None:
    """A folder named ``My Bot`` must say its id in bot.yaml."""
    problems = check_bot(make_bot(tmp_path, {"bot.yaml": GOOD_CONFIG}, name="My Bot"))
    assert "set id in bot.yaml" in problems[0].message
    explicit = make_bot(tmp_path, {"bot.yaml": "id: my-bot\n" + GOOD_CONFIG}, name="My Other Bot")
    assert load_bot(explicit).config.id == "my-bot"


def test_check_folders_names_each_file_by_its_path(tmp_path: Path) -> None:
    """Problems of several folders come with the folder in the file name, lines kept."""
    good = make_bot(tmp_path, {"bot.yaml": GOOD_CONFIG}, name="good")
    bad = make_bot(tmp_path, {"bot.yaml": GOOD_CONFIG + "nane: x\n"}, name="bad")
    assert located(check_folders([good, bad])) == [
        (str(bad / "bot.yaml"), 2, 'unknown setting "nane" (did you mean "name"?)')
    ]


def test_two_folders_with_one_id_are_a_problem_naming_both(tmp_path: Path) -> None:
    """The second folder claiming an id is reported at its bot.yaml, naming the first folder."""
    first = make_bot(tmp_path, {"bot.yaml": "id: same\n" + GOOD_CONFIG}, name="a")
    second = make_bot(tmp_path, {"bot.yaml": "id: same\n" + GOOD_CONFIG}, name="b")
    third = make_bot(tmp_path, {"bot.yaml": GOOD_CONFIG}, name="same")
    assert check_bot(first) == [] and check_bot(second) == []
    found = located(check_folders([first, second, third]))
    assert [(file, line) for file, line, _ in found] == [
        (str(second / "bot.yaml"), None),
        (str(third / "bot.yaml"), None),
    ]
    assert all(f"bot id 'same' is already used by {first}" in message for _, _, message in found)


def test_bot_folders_are_the_demo_then_every_sub_folder_with_a_bot_yaml(tmp_path: Path) -> None:
    """Sub-folders without a bot.yaml are skipped; a missing bots folder is a ConfigError."""
    make_bot(tmp_path, {"bot.yaml": GOOD_CONFIG}, name="b")
    make_bot(tmp_path, {"bot.yaml": GOOD_CONFIG}, name="a")
    make_bot(tmp_path, {"notes.txt": "x"}, name="c")
    demo = tmp_path / "demo"
    assert bot_folders(tmp_path, demo) == [demo, tmp_path / "a", tmp_path / "b"]
    with pytest.raises(ConfigError, match="is not a folder"):
        bot_folders(tmp_path / "nope", None)


def test_check_reports_a_markdown_answer_placeholder_that_cannot_be_escaped(
    tmp_path: Path,
) -> None:
    """A placeholder inside a legacy-Markdown entity is a warning at the answer's file and line."""
    folder = make_bot(
        tmp_path,
        {
            "bot.yaml": GOOD_CONFIG,
            "hi.py": '"""\ncommand: /hi\nparse_mode: Markdown\n'
            'answer: Hi *{{user.first_name}}*\n"""\n',
            "ok.py": '"""\ncommand: /ok\nparse_mode: Markdown\n'
            'answer: Hi {{user.first_name}}\n"""\n',
        },
    )
    ((file, line, message),) = located(check_bot(folder))
    assert (file, line) == ("hi.py", 4)
    assert "{{user.first_name}}" in message
    assert "cannot be escaped" in message
    (problem,) = check_bot(folder)
    assert problem.warning and problem.describe().startswith("hi.py:4: warning: ")
    assert load_bot(folder).commands.by_name  # a warning never stops the bot from loading
