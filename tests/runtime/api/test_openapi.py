"""The OpenAPI 3.1 document, and a schemathesis run against it on a live server."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.api.conftest import BLOG, SHOP, Api, create_token
from tests.support.server import BotboxServer, hosting
from tests.support.telegram_standin import TelegramStandIn

METHODS = {"get", "put", "post", "delete", "patch"}


def test_every_protected_operation_declares_bearer_security(api: Api) -> None:
    """The document says which operations need a token: each one itself, no blanket rule."""
    response = api.server.client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert "security" not in document
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    operations = [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]
    assert len(operations) >= 20
    for path, method, op in operations:
        if path == "/api/openapi.json":
            assert op["security"] == []
            continue
        assert op["security"] == [{"bearer": []}], (path, method)
        assert "401" in op["responses"], (path, method)
        if "{bot_id}" in path:
            assert "404" in op["responses"], (path, method)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BotboxServer, str]]:
    """A server of its own (schemathesis changes keys and users), and an admin token."""
    root = Path(tmp_path_factory.mktemp("fuzz"))
    tokens = {"SHOP_TOKEN": "1:x", "BLOG_TOKEN": "2:y"}
    with (
        # The stand-in knows the bots' tokens, so the Telegram operations reach it and succeed.
        TelegramStandIn(tokens=set(tokens.values())) as telegram,
        hosting(
            root, {"shop": SHOP, "blog": BLOG}, telegram_api=telegram.base_url, env=tokens
        ) as server,
    ):
        yield server, create_token(server, "--name", "fuzzer", "--role", "admin")


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(
    fuzzed: tuple[BotboxServer, str], tmp_path: Path
) -> None:
    server, token = fuzzed
    # Uploads (an archive, one file) take any bytes by their schema, but only a real bot
    # folder is accepted: random bytes are refused 400 (not an archive) or 422 (the check), as
    # they should be. So for them "schema-valid data is accepted" also takes 400 and 422; every
    # other check (no 5xx, answers as documented) runs on them as on the rest. Their refusals
    # are tested one by one with crafted archives in tests/runtime/api/test_versions.py.
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "".join(
            "[[operations]]\n"
            f'include-operation-id = "{operation}"\n'
            "checks.positive_data_acceptance.expected-statuses"
            ' = ["2xx", "400", "401", "403", "404", "409", "413", "422"]\n'
            for operation in ("upload_version", "put_file")
        )
    )
    started = time.monotonic()
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(config),
            "run",
            f"{server.url}/api/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "all",  # no 5xx, and every answer as the document says (status, schema, headers)
            "--max-examples",
            "8",
            "--seed",
            "1",
            "--report-dir",
            str(tmp_path / "report"),
            "--no-color",
        ],
        cwd=tmp_path,  # schemathesis keeps a cache in its working directory
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-4000:]
    assert "Authentication failed" not in done.stdout, done.stdout[-4000:]
    assert elapsed < 60, f"schemathesis took {elapsed:.0f} s"
    assert " 0 passed" not in done.stdout


def test_uploads_declare_binary_bodies_and_the_errors_they_answer(api: Api) -> None:
    """An archive upload and a one-file put take raw bytes (not JSON): the document says so,
    with 400 (refused upload), 413 (too large) and 422 (the check's problems)."""
    paths = api.server.client.get("/api/openapi.json").json()["paths"]
    for path, method in (
        ("/api/v1/bots/{bot_id}/versions", "post"),
        ("/api/v1/bots/{bot_id}/files/{name}", "put"),
    ):
        operation = paths[path][method]
        content = operation["requestBody"]["content"]
        assert content["application/octet-stream"]["schema"] == {
            "type": "string",
            "format": "binary",
        }
        assert {"400", "401", "403", "404", "413", "422"} <= set(operation["responses"])
