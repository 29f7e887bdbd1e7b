"""``python -m sandbox run FILE``: the authors' command."""

from __future__ import annotations

import json
import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_good_script_prints_its_output_and_exits_zero(tmp_path):
    """A succeeding script's output is printed and the exit status is 0."""
    script = tmp_path / "hello.py"
    script.write_text("print('hello from the sandbox')\n")
    done = run_cli("run", str(script))
    assert done.returncode == 0
    assert done.stdout.startswith("hello from the sandbox\n")
    assert "-- ok" in done.stdout


def test_a_failing_script_shows_its_traceback_and_exits_non_zero(tmp_path):
    """A script error prints the author's frames with line numbers and exits 1."""
    script = tmp_path / "bad.py"
    script.write_text("def f(x):\n    return 10 / x\n\nf(0)\n")
    done = run_cli("run", str(script))
    assert done.returncode == 1
    assert 'File "bad.py", line 4, in <module>' in done.stdout
    assert "line 2: ZeroDivisionError: division by zero" in done.stdout
    assert "sandbox/" not in done.stdout


def test_json_mode_prints_one_document(tmp_path):
    """--json prints the whole result as JSON, with the status and the error's line."""
    script = tmp_path / "loop.py"
    script.write_text("print('a')\nx = (\n")
    done = run_cli("run", str(script), "--json")
    assert done.returncode == 1
    document = json.loads(done.stdout)
    assert document["status"] == "compile_error"
    assert document["error"]["line"] == 2


def test_a_missing_file_is_a_clear_error(tmp_path):
    """A file that does not exist gets a one-line error and exit status 2."""
    done = run_cli("run", str(tmp_path / "nope.py"))
    assert done.returncode == 2
    assert "cannot read" in done.stderr
    assert "Traceback" not in done.stderr
