"""A bot's ``lib/``: which files are modules, how they are read, checked and carried by a
version (pure, plus reading real folders)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.bots.folder import (
    LibModule,
    check_folders,
    inspect_files,
    is_bot_file,
    lib_module_name,
    load_bot,
    read_files,
)
from runtime.bots.versions import check_version, digest

YAML = "id: quizbot\ntoken_env: QUIZ_TOKEN\n"
COMMAND = '"""\ncommand: /quiz\n"""\nfrom lib import quiz\n'


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("lib/quiz.py", "lib.quiz"),
        ("quiz.py", None),
        ("lib/sub/quiz.py", None),
        ("lib/_private.py", None),
        ("lib/.hidden.py", None),
        ("other/quiz.py", None),
        ("lib/quiz.txt", None),
        ("/lib/quiz.py", None),
    ],
)
def test_only_py_files_directly_in_lib_are_modules(name: str, module: str | None) -> None:
    assert lib_module_name(name) == module
    assert is_bot_file(name) is (module is not None or name == "quiz.py")


def test_a_lib_module_compile_error_is_reported_with_its_file_and_line() -> None:
    files = {"bot.yaml": YAML, "quiz.py": COMMAND, "lib/quiz.py": "x = 1\n\nif x\n    pass\n"}
    _, commands, problems = inspect_files(files, "quizbot")
    assert [c.name for c in commands] == ["/quiz"]
    assert [p.describe() for p in problems] == ["lib/quiz.py:3: SyntaxError: expected ':'"]


def test_a_lib_module_breaking_the_policy_is_reported_with_its_line() -> None:
    files = {"bot.yaml": YAML, "lib/quiz.py": "def f(x):\n    return x._secret\n"}
    (problem,) = inspect_files(files, "quizbot")[2]
    assert (problem.file, problem.line) == ("lib/quiz.py", 2)


@pytest.mark.parametrize("name", ["lib/quiz-game.py", "lib/2quiz.py", "lib/a.b.py", "lib/quïz.py"])
def test_a_module_name_scripts_cannot_import_is_a_problem(name: str) -> None:
    (problem,) = inspect_files({"bot.yaml": YAML, name: "x = 1\n"}, "quizbot")[2]
    assert problem.file == name
    assert "a module's name must be a Python identifier" in problem.message


def test_an_uploaded_file_deeper_in_lib_is_not_a_bot_file() -> None:
    (problem,) = inspect_files({"bot.yaml": YAML, "lib/sub/x.py": "x = 1\n"}, "quizbot")[2]
    assert problem.message.startswith("not a bot file")


def test_a_folder_with_lib_loads_its_modules_and_reports_nested_folders(tmp_path: Path) -> None:
    folder = tmp_path / "quizbot"
    (folder / "lib" / "deep").mkdir(parents=True)
    (folder / "bot.yaml").write_text(YAML)
    (folder / "quiz.py").write_text(COMMAND)
    (folder / "lib" / "quiz.py").write_text("PROMPT = 'two plus two?'\n")
    (folder / "lib" / "_draft.py").write_text("this is not python")
    (folder / "lib" / "notes.txt").write_text("ignored")
    files = read_files(folder)
    assert sorted(files) == ["bot.yaml", "lib/deep/", "lib/quiz.py", "quiz.py"]
    problems = check_folders([folder])
    assert [p.describe() for p in problems] == [
        f"{folder}/lib/deep: lib/ holds plain modules (lib/NAME.py); folders inside it are "
        "not supported"
    ]
    (folder / "lib" / "deep").rmdir()
    definition = load_bot(folder)
    assert definition.modules == (
        LibModule("lib.quiz", "lib/quiz.py", "PROMPT = 'two plus two?'\n"),
    )


def test_a_version_carries_its_lib_and_a_lib_change_is_a_new_digest() -> None:
    files = {"bot.yaml": YAML, "quiz.py": COMMAND, "lib/quiz.py": "PROMPT = 1\n"}
    definition, problems, texts = check_version("quizbot", files)
    assert problems == [] and definition is not None
    assert [m.name for m in definition.modules] == ["lib.quiz"]
    assert texts == files
    assert digest(texts) != digest({**texts, "lib/quiz.py": "PROMPT = 2\n"})
