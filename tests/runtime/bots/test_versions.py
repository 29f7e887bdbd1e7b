"""Versions as pure values: digests, the deploy check, diffs (runtime/bots/versions.py)."""

from __future__ import annotations

from runtime.bots.versions import (
    bot_id_of,
    check_version,
    digest,
    problems_from_json,
    problems_to_json,
    unified_diff,
)
from runtime.errors import Problem

GOOD = {"bot.yaml": "token_env: T\n", "hi.py": "# command: /hi\n# answer: hi\n"}


def test_the_digest_is_the_content_not_the_order_or_the_split_between_name_and_text():
    """Same files in another order: one digest; moving text between name and body: another."""
    assert digest(GOOD) == digest(dict(reversed(list(GOOD.items()))))
    assert digest({"ab": "c"}) != digest({"a": "bc"})
    assert digest(GOOD) != digest({**GOOD, "hi.py": GOOD["hi.py"] + " "})


def test_good_files_load_as_the_named_bot():
    """A bot.yaml without id takes the bot id it is deployed as."""
    definition, problems, texts = check_version("shop", GOOD)
    assert definition is not None and definition.config.id == "shop"
    assert problems == []
    assert texts == GOOD


def test_every_problem_is_reported_with_file_and_line_and_nothing_loads():
    """A compile error, a file that is not a bot file and an id for another bot: all listed."""
    files = {
        "bot.yaml": "id: other\ntoken_env: T\n",
        "bad.py": "# command: /bad\nif True\n",
        "notes.txt": "hello",
    }
    definition, problems, _ = check_version("shop", files)
    assert definition is None
    described = [problem.describe() for problem in problems]
    assert "bot.yaml: bot.yaml names id 'other', but this is bot 'shop'" in described
    assert any(line.startswith("bad.py:2: SyntaxError") for line in described)
    assert any(line.startswith("notes.txt: not a bot file") for line in described)


def test_a_missing_bot_yaml_is_a_problem():
    """A version without bot.yaml is refused, naming the file."""
    definition, problems, _ = check_version("shop", {"hi.py": GOOD["hi.py"]})
    assert definition is None
    assert Problem("the file is missing", "bot.yaml") in problems


def test_the_bot_id_comes_from_bot_yaml_else_the_folder_name():
    """id in bot.yaml wins; a broken or missing bot.yaml falls back to the folder's name."""
    assert bot_id_of({"bot.yaml": "id: named\ntoken_env: T\n"}, "folder") == "named"
    assert bot_id_of({"bot.yaml": ": : :"}, "folder") == "folder"
    assert bot_id_of({}, "folder") == "folder"


def test_a_diff_names_each_changed_file_and_is_empty_for_equal_sets():
    """Changed, added and removed files each appear once; equal file sets diff to nothing."""
    new = {"bot.yaml": GOOD["bot.yaml"], "hi.py": "# command: /hi\n# answer: hello\n", "n.py": "x"}
    text = unified_diff(GOOD, new, old_label="v1", new_label="v2")
    assert "--- v1/hi.py\n+++ v2/hi.py\n" in text
    assert "-# answer: hi\n+# answer: hello\n" in text
    assert "--- /dev/null\n+++ v2/n.py\n" in text
    assert "+x\n\\ No newline at end of file\n" in text
    assert "bot.yaml" not in text
    assert unified_diff(GOOD, dict(GOOD), old_label="a", new_label="b") == ""


def test_problems_survive_the_round_trip_through_plain_data():
    """What the store keeps for a refused deploy reads back as the same problems."""
    problems = [Problem("boom", "a.py", 3), Problem("careful", warning=True)]
    assert problems_from_json(problems_to_json(problems)) == problems
    assert problems_from_json("junk") == []
