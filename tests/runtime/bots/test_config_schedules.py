"""``schedules:`` in bot.yaml: parsed into :class:`Schedule`, every problem at its entry's line."""

from __future__ import annotations

from runtime.bots.config import parse_config
from runtime.bots.folder import inspect_files

HEAD = "token_env: T\n"


def problems_of(text: str) -> list[tuple[int | None, str]]:
    config, problems = parse_config(text, "mybot")
    assert config is None
    return [(p.line, p.message) for p in problems]


def test_a_schedule_is_parsed_with_its_defaults() -> None:
    text = HEAD + (
        "schedules:\n"
        '  - cron: "0 9 * * *"\n'
        "    command: daily\n"
        "    timezone: Europe/Berlin\n"
        "  - cron: '*/5 * * * *'\n"
        "    command: daily\n"
        "    name: often\n"
        "    params: fast\n"
        "    options: {level: 2}\n"
        "    catch_up: 0\n"
    )
    config, problems = parse_config(text, "mybot")
    assert problems == [] and config is not None
    first, second = config.schedules
    assert (first.name, first.command, first.cron.timezone, first.catch_up) == (
        "daily",
        "daily",
        "Europe/Berlin",
        3600.0,
    )
    assert first.line == 3
    assert (second.name, second.params, second.options, second.catch_up) == (
        "often",
        "fast",
        {"level": 2},
        0.0,
    )
    assert second.spec() == "*/5 * * * *|UTC"


def test_each_bad_entry_is_reported_at_its_key_naming_the_entry() -> None:
    text = HEAD + (
        "schedules:\n"  # 2
        "  - cron: '61 * * * *'\n"  # 3
        "    command: a\n"  # 4
        "  - cron: '0 9 * * *'\n"  # 5
        "    command: b\n"  # 6
        "    timezone: Mars/Base\n"  # 7
        "    catch_up: -5\n"  # 8
        "    every: day\n"  # 9
        "  - command: c\n"  # 10
        "  - just text\n"  # 11
    )
    found = problems_of(text)
    assert (3, "schedules[0]: cron '61 * * * *' is not a valid cron expression") in found
    assert any(line == 7 and "schedules[1]: timezone 'Mars/Base'" in m for line, m in found)
    assert any(line == 8 and "schedules[1].catch_up" in m for line, m in found)
    assert any(line == 9 and 'schedules[1]: unknown key "every"' in m for line, m in found)
    assert (10, "schedules[2]: cron is required") in found
    assert any(line == 11 and m.startswith("schedules[3] must be a mapping") for line, m in found)


def test_two_entries_with_one_name_are_refused() -> None:
    text = HEAD + (
        "schedules:\n  - cron: '0 9 * * *'\n    command: a\n  - cron: '0 10 * * *'\n"
        "    command: a\n"
    )
    ((line, message),) = problems_of(text)
    assert line == 5
    assert "'a' is already used by schedules[0]" in message


def test_schedules_must_be_a_list() -> None:
    assert problems_of(HEAD + "schedules:\n  cron: x\n") == [
        (2, '"schedules" must be a list of entries, not dict')
    ]


def test_a_schedule_naming_a_missing_command_is_a_check_problem_at_its_line() -> None:
    files = {
        "bot.yaml": HEAD + "schedules:\n  - cron: '0 9 * * *'\n    command: daly\n",
        "daily.py": "# command: daily\nBot.sendMessage('hi')\n",
    }
    config, _, problems = inspect_files(files, "mybot")
    assert config is not None
    ((problem,),) = [problems]
    assert (problem.file, problem.line) == ("bot.yaml", 3)
    assert "runs command 'daly', which the bot does not have" in problem.message
    assert 'did you mean "daily"' in problem.message


def test_a_self_referencing_alias_is_a_problem_not_a_crash() -> None:
    """``&a [*a]`` is a list that holds itself: refused at its line, in options and settings."""
    options = problems_of(
        HEAD + "schedules:\n  - cron: '0 9 * * *'\n    command: a\n    options: &a [*a]\n"
    )
    assert any(line == 5 and "nested more than 64 deep" in m for line, m in options), options
    settings = problems_of(HEAD + "settings:\n  loop: &b [*b]\n")
    assert any("nested more than 64 deep" in m for _, m in settings), settings


def test_a_self_referencing_schedules_list_is_refused() -> None:
    found = problems_of(HEAD + "schedules: &a [*a]\n")
    assert found == [(2, "schedules[0] must be a mapping with cron: and command:")]
