"""bot.yaml: every key parsed, converted and checked in one place, problems at their lines."""

from __future__ import annotations

import pytest

from runtime.bots.config import parse_config
from runtime.signing.links import ClickRate, WebhookSettings
from sandbox import Limits
from sandbox.limits import KIB, MIB

GOOD_CONFIG = "token_env: BOT_TOKEN\n"


def config_problems(text: str) -> list[tuple[int | None, str]]:
    """Parse bot.yaml text that must fail; return each problem's line and message."""
    config, problems = parse_config(text, "mybot")
    assert config is None
    assert problems
    assert all(problem.file == "bot.yaml" for problem in problems)
    return [(problem.line, problem.message) for problem in problems]


def test_limits_use_friendly_units_and_defaults_for_the_rest() -> None:
    """``memory_mb`` and ``output_kb`` become bytes; unset limits keep the sandbox defaults."""
    config, problems = parse_config(
        GOOD_CONFIG + "limits:\n  memory_mb: 0.5\n  output_kb: 2\n", "b"
    )
    assert problems == []
    assert config is not None
    assert config.limits == Limits(memory_bytes=MIB // 2, output_bytes=2 * KIB)


def test_a_username_may_be_written_with_its_at_sign() -> None:
    """``username: "@MyBot"`` is stored without the ``@``."""
    config, _ = parse_config(GOOD_CONFIG + 'username: "@MyBot"\n', "b")
    assert config is not None and config.username == "MyBot"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", None, "token_env is required"),
        ("name: x\n", None, "token_env is required"),
        ("token_env:\n", 1, "token_env is required"),
        ("token_env: 12\n", 1, '"token_env" must be text'),
        ("token_env: MY-TOKEN\n", 1, "is not an environment variable name"),
        ("- a\n- b\n", 1, "must be a mapping"),
        ("token_env: T\ntoken_env: U\n", 2, '"token_env" is given twice'),
        ("token_env: T\nlimits: [1]\n", 2, '"limits" must be a mapping'),
        ("token_env: T\nid: Bad Id\n", 2, "id 'Bad Id' must be a-z"),
        ("token_env: T\nusername: no spaces\n", 2, "is not a Telegram username"),
        ("token_env: T\nnane: x\n", 2, 'unknown setting "nane" (did you mean "name"?)'),
        ("token_env: T\nlimits:\n  cpu_seconds: -1\n", 2, "limits: cpu_seconds must be a positive"),
        (
            "token_env: T\nlimits:\n  cpu_seconds: 5\n  wall_seconds: 2\n",
            2,
            "cannot be larger than",
        ),
        ("token_env: T\nlimits:\n  capability_calls: 2.5\n", 3, "must be a whole number"),
        ("token_env: T\nlimits:\n  recursion_depth: true\n", 3, "must be a whole number"),
        ("token_env: T\nlimits:\n  wall_seconds: .inf\n", 3, "must be a number"),
        (
            "token_env: T\nlimits:\n  memory_bytes: 5\n",
            3,
            'unknown limit "memory_bytes" (did you mean "memory_mb"?)',
        ),
        ("token_env: T\nproperties:\n  max_value_bytes: 0\n", 3, "must be a positive whole number"),
        ("token_env: T\nproperties:\n  max_values: 5\n", 3, '(did you mean "max_value_bytes"?)'),
        ("token_env: T\nruns:\n  max_pending: 0\n", 3, '"runs.max_pending" must be a positive'),
        ("token_env: T\nruns:\n  max_generations: 2.5\n", 3, "must be a positive whole"),
        ("token_env: T\nruns:\n  max_generation: 5\n", 3, '(did you mean "max_generations"?)'),
        ("token_env: T\nruns: 5\n", 2, '"runs" must be a mapping'),
        ("token_env: T\nsettings:\n  launch: 2024-01-01\n", 3, '"settings.launch" holds a date'),
        ("token_env: T\nsettings:\n  ratio: .nan\n", 3, "which JSON cannot"),
        ("token_env: T\nsettings:\n  1: one\n", 3, "key 1, which is not text"),
        ("token_env: T\nwebhook: yes\n", 2, '"webhook" must be a mapping'),
        ("token_env: T\nwebhook:\n  per_link: lots\n", 3, "webhook.per_link must look like 30/60"),
        ("token_env: T\nwebhook:\n  per_bot: 0/60\n", 3, "webhook.per_bot must look like"),
        ("token_env: T\nwebhook:\n  per_links: 5/60\n", 3, '(did you mean "per_link"?)'),
        (
            "token_env: T\nwebhook:\n  allow_http_redirects: 'yes'\n",
            3,
            "allow_http_redirects must be true or false",
        ),
        ("token_env: T\nname: [x]\n", 2, '"name" must be text'),
        ("token_env: [oops\n", 1, "bad YAML"),
        (
            "token_env: T\nsecret: 987654321:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
            2,
            "looks like a Telegram bot token",
        ),
    ],
    ids=[
        "empty-file",
        "no-token-env",
        "null-token-env",
        "token-env-number",
        "token-env-not-a-variable-name",
        "not-a-mapping",
        "repeated-key",
        "limits-not-mapping",
        "bad-id",
        "bad-username",
        "unknown-setting",
        "negative-limit",
        "cpu-above-wall",
        "fractional-count",
        "boolean-limit",
        "infinite-limit",
        "limit-in-the-wrong-unit",
        "zero-property-limit",
        "unknown-property-limit",
        "zero-pending-runs",
        "fractional-generations",
        "unknown-runs-setting",
        "runs-not-mapping",
        "date-in-settings",
        "nan-in-settings",
        "non-text-key-in-settings",
        "webhook-not-mapping",
        "webhook-rate-not-a-rate",
        "webhook-rate-of-zero",
        "unknown-webhook-setting",
        "webhook-redirects-not-a-boolean",
        "name-not-text",
        "bad-yaml",
        "token-anywhere",
    ],
)
def test_bot_yaml_problems_are_reported_at_their_line(
    text: str, line: int | None, fragment: str
) -> None:
    """Each bad bot.yaml is refused with a problem at the right line."""
    found = config_problems(text)
    assert any(n == line and fragment in m for n, m in found), found


def test_run_limits_default_to_a_thousand_pending_and_ten_generations() -> None:
    """A bot.yaml without ``runs`` gets the documented defaults."""
    config, problems = parse_config("token_env: T\n", "mybot")
    assert problems == [] and config is not None
    assert (config.runs.max_pending, config.runs.max_generations) == (1000, 10)


def test_a_yaml_alias_bomb_in_settings_is_refused() -> None:
    """Anchors that expand to millions of values are refused, not walked."""
    lines = ["token_env: T", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    text = (
        "\n".join(lines[:1]) + "\nsettings:\n" + "\n".join("  " + line for line in lines[1:]) + "\n"
    )
    found = config_problems(text)
    assert any("too large" in message for _, message in found), found


def test_webhook_settings_become_rates_and_unset_ones_keep_their_defaults() -> None:
    """``webhook`` is parsed here, into the settings the click handler uses."""
    config, problems = parse_config(
        GOOD_CONFIG + "webhook:\n  per_user: 5/10\n  allow_http_redirects: true\n", "b"
    )
    assert problems == [] and config is not None
    assert config.webhook == WebhookSettings(per_user=ClickRate(5, 10.0), allow_http_redirects=True)
    assert config.webhook.per_link == ClickRate(30, 60.0)


def test_every_problem_of_a_bot_yaml_is_listed_not_only_the_first() -> None:
    """Bad webhook values and other bad keys are all reported, each at its own line."""
    text = (
        "token_env: T\n"
        "webhook:\n"
        "  per_link: lots\n"
        "  per_user: x\n"
        "  colour: red\n"
        "limits:\n"
        "  memory_mb: many\n"
    )
    assert sorted(line or 0 for line, _ in config_problems(text)) == [3, 4, 5, 7]


def test_http_rules_and_limits_are_read_into_the_bots_policy() -> None:
    """``http``: allow/deny patterns, extra ports (80 and 443 stay), limits in friendly units."""
    config, problems = parse_config(
        GOOD_CONFIG
        + "http:\n"
        + '  allow: ["api.example.com", "*.cdn.test", "127.0.0.2", "10.0.0.0/8"]\n'
        + '  deny: ["bad.example.com"]\n'
        + "  ports: [8080]\n"
        + "  timeout_seconds: 2.5\n  max_kb: 64\n  per_run: 5\n  per_minute: 30\n"
        + "  max_redirects: 0\n",
        "b",
    )
    assert problems == []
    assert config is not None
    http = config.http
    assert [p.text for p in http.allow] == [
        "api.example.com",
        "*.cdn.test",
        "127.0.0.2",
        "10.0.0.0/8",
    ]
    assert [p.text for p in http.deny] == ["bad.example.com"]
    assert http.ports == frozenset({80, 443, 8080})
    assert (http.timeout, http.max_bytes, http.per_run, http.per_minute, http.max_redirects) == (
        2.5,
        64 * KIB,
        5,
        30,
        0,
    )


def test_without_http_a_bot_gets_the_default_rules() -> None:
    config, _ = parse_config(GOOD_CONFIG, "b")
    assert config is not None
    assert config.http.allow == ()
    assert config.http.ports == frozenset({80, 443})


def test_bad_http_settings_are_problems_at_their_lines() -> None:
    problems = config_problems(
        GOOD_CONFIG
        + "http:\n"
        + '  allow: ["not a host"]\n'
        + "  deny: bad.example.com\n"
        + "  ports: [0, 80]\n"
        + "  timeout_seconds: 0\n"
        + "  max_kb: 1.5\n"
        + "  per_mnute: 3\n"
    )
    assert problems == [
        (
            3,
            "http.allow: 'not a host' is not a host pattern: use a name (api.example.com), "
            "*.example.com, *, an address (127.0.0.2) or a network (10.0.0.0/8)",
        ),
        (4, "http.deny must be a list of host patterns"),
        (5, "http.ports must be a list of port numbers (1 to 65535)"),
        (6, "http.timeout_seconds must be a number from 0.1 to 120, not 0"),
        (7, "http.max_kb must be a whole number from 1 to 16384, not 1.5"),
        (8, 'unknown http setting "per_mnute" (did you mean "per_minute"?)'),
    ]


def test_files_and_pages_are_parsed_with_their_defaults_and_limits() -> None:
    text = (
        "id: shop\ntoken_env: T\nusername: shop_bot\n"
        "files:\n  max_upload_mb: 2\n  max_download_mb: 0.5\n"
        "pages:\n  text: Hello\n"
    )
    config, problems = parse_config(text, "shop")
    assert problems == [] and config is not None
    assert config.files.max_upload_bytes == 2 * 1024 * 1024
    assert config.files.max_download_bytes == 512 * 1024
    assert (config.pages.title, config.pages.text, config.pages.link) == (
        "shop",
        "Hello",
        "https://t.me/shop_bot",
    )


@pytest.mark.parametrize(
    ("section", "line", "words"),
    [
        ("files:\n  max_upload_mb: 51\n", 4, "at most 50"),
        ("files:\n  max_download_mb: 0\n", 4, "above 0"),
        ("files:\n  max_uplod_mb: 1\n", 4, 'did you mean "max_upload_mb"'),
        ("pages:\n  link: javascript:alert(1)\n", 4, "http(s):// or tg://"),
        ("pages:\n  title: [1]\n", 4, "at most 80 characters"),
    ],
)
def test_bad_files_and_pages_settings_are_reported_at_their_lines(
    section: str, line: int, words: str
) -> None:
    config, problems = parse_config("id: shop\ntoken_env: T\n" + section, "shop")
    assert config is None
    assert [(p.line, words in p.message) for p in problems] == [(line, True)], problems
