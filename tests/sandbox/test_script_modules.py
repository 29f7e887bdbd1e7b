"""Script modules: a run's own policy-compiled modules, imported under the same rules.

Each test runs real worker processes (the session's shared pool, or a pool of its own where the
worker's cache matters).
"""

from __future__ import annotations

import pytest

from sandbox import JSON, CallRequest, Status, WorkerPool, compile_script


def lib(name: str, source: str) -> dict[str, object]:
    """One module ``lib.<name>`` compiled from ``lib/<name>.py``."""
    return {f"lib.{name}": compile_script(source, filename=f"lib/{name}.py")}


QUIZ = "QUESTION = 'two plus two?'\n\ndef check(answer):\n    return answer == 4\n"


@pytest.mark.parametrize(
    "source",
    [
        "from lib import quiz\nprint(quiz.check(4), quiz.QUESTION)",
        "import lib.quiz\nprint(lib.quiz.check(4), lib.quiz.QUESTION)",
        "from lib.quiz import check, QUESTION\nprint(check(4), QUESTION)",
        "def f():\n    from lib import quiz\n    return quiz.check(4)\nprint(f(), 'two plus two?')",
    ],
)
async def test_a_script_imports_its_modules_in_every_form(pool, source):
    result = await pool.run(source, modules=lib("quiz", QUIZ))
    assert result.output == "True two plus two?\n", result.describe()


async def test_module_state_is_fresh_for_every_run(pool):
    counter = "count = 0\n\ndef bump():\n    global count\n    count += 1\n    return count\n"
    modules = lib("counter", counter)
    script = "from lib import counter\ncounter.bump()\nprint(counter.bump())"
    first = await pool.run(script, modules=modules, tenant="fresh")
    second = await pool.run(script, modules=modules, tenant="fresh")
    assert (first.output, second.output) == ("2\n", "2\n")


async def test_a_module_is_imported_once_per_run(pool):
    modules = lib("once", "print('body ran')\nitems = []\n")
    script = (
        "import lib.once\nfrom lib import once\nfrom lib.once import items\n"
        "items.append(1)\nprint(lib.once is once, once.items)"
    )
    result = await pool.run(script, modules=modules)
    assert result.output == "body ran\nTrue [1]\n"


async def test_a_script_cannot_change_a_module_or_a_package(pool):
    modules = lib("quiz", QUIZ)
    changed = await pool.run("from lib import quiz\nquiz.QUESTION = 'x'", modules=modules)
    assert changed.status is Status.SCRIPT_ERROR
    assert "cannot change attributes" in changed.error.message
    package = await pool.run("import lib.quiz\nlib.quiz = 1", modules=modules)
    assert package.status is Status.SCRIPT_ERROR


async def test_a_circular_import_names_the_cycle(pool):
    modules = {
        **lib("a", "from lib import b\nA = 1\n"),
        **lib("b", "from lib import a\nB = 2\n"),
    }
    result = await pool.run("from lib import a", modules=modules)
    assert result.status is Status.SCRIPT_ERROR
    assert result.error.type == "ImportError"
    assert "circular import: lib.a -> lib.b -> lib.a" in result.error.message
    assert result.error.file == "lib/b.py"
    assert result.error.line == 1


async def test_a_module_may_not_call_a_capability_at_import(pool):
    sent: list[JSON] = []

    async def send(call: CallRequest) -> JSON:
        sent.append(call.args[0])
        return None

    module = lib("noisy", "x = 1\nApi.send('hello at import')\n")
    result = await pool.run(
        "from lib import noisy", modules=module, capabilities={"Api.send": send}
    )
    assert result.status is Status.SCRIPT_ERROR
    assert result.error.type == "ImportError"
    assert "Api.send() was called while lib.noisy was being imported" in result.error.message
    assert (result.error.file, result.error.line) == ("lib/noisy.py", 2)
    assert sent == []


async def test_a_module_function_calls_capabilities_at_run_time(pool):
    sent: list[JSON] = []

    async def send(call: CallRequest) -> JSON:
        sent.append(call.args[0])
        return "sent"

    module = lib("greet", "def hello(name):\n    return Api.send('hello ' + name)\n")
    result = await pool.run(
        "from lib import greet\nprint(greet.hello('ann'))",
        modules=module,
        capabilities={"Api.send": send},
    )
    assert result.output == "sent\n", result.describe()
    assert sent == ["hello ann"]


async def test_an_error_inside_a_module_shows_its_file_and_line(pool):
    module = lib("maths", "def ratio(a, b):\n    total = a + b\n    return a / (b - b)\n")
    result = await pool.run("from lib import maths\n\nmaths.ratio(1, 2)\n", modules=module)
    assert result.status is Status.SCRIPT_ERROR
    assert result.error.type == "ZeroDivisionError"
    assert (result.error.file, result.error.line) == ("lib/maths.py", 3)
    assert result.error.describe().startswith("lib/maths.py:3: ZeroDivisionError")
    frames = [(f.file, f.line, f.text) for f in result.error.traceback]
    assert frames == [
        ("<script>", 3, "maths.ratio(1, 2)"),
        ("lib/maths.py", 3, "return a / (b - b)"),
    ]


async def test_a_module_that_does_not_compile_fails_its_import_with_file_and_line(pool):
    module = lib("broken", "x = 1\ndef f(:\n")
    result = await pool.run("print('before')\nfrom lib import broken", modules=module)
    assert result.output == "before\n"
    assert result.error.type == "ImportError"
    assert result.error.message.startswith("lib/broken.py: line 2: SyntaxError")


async def test_a_top_level_return_in_a_module_is_refused(pool):
    result = await pool.run("from lib import early", modules=lib("early", "x = 1\nreturn 5\n"))
    assert result.error.type == "ImportError"
    assert "cannot end with a top-level return" in result.error.message


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("import lib.other", "import of 'lib.other' is not allowed"),
        ("from lib import other", "there is no module lib.other; this run's own modules: lib.quiz"),
        ("import lib.quiz\nprint(lib.other)", "lib.other is not imported"),
        ("import lib.quiz.check", "import of 'lib.quiz.check' is not allowed"),
        ("import sys", "import of 'sys' is not allowed"),
        ("import quiz", "import of 'quiz' is not allowed"),
        ("import start", "import of 'start' is not allowed"),
    ],
)
async def test_only_the_modules_given_to_the_run_can_be_imported(pool, source, error):
    result = await pool.run(source, modules=lib("quiz", QUIZ))
    assert result.status is Status.SCRIPT_ERROR
    assert error in result.error.message


@pytest.mark.parametrize(
    "source",
    [
        "from . import quiz",
        "from .lib import quiz",
        "import lib..quiz",
        "__import__('lib.quiz', fromlist=('check',))",
        "from lib import *",
        "import lib.quiz\nlib.quiz.__dict__",
    ],
)
async def test_import_tricks_do_not_compile_or_fail(pool, source):
    result = await pool.run(source, modules=lib("quiz", QUIZ))
    assert result.status in (Status.COMPILE_ERROR, Status.SCRIPT_ERROR), source
    assert result.output == ""


async def test_a_tenant_never_imports_another_tenants_module():
    """Bot B's worker cannot import bot A's module, not even right after A's run on the pool,
    nor by naming it: only the modules of its own run exist."""
    secret = lib("secret", "TOKEN = 'a-secret'\n")
    async with WorkerPool(1) as pool:
        owner = await pool.run(
            "from lib import secret\nprint(secret.TOKEN)", modules=secret, tenant="a"
        )
        assert owner.output == "a-secret\n"
        other = await pool.run("from lib import secret\nprint(secret.TOKEN)", tenant="b")
        assert other.status is Status.SCRIPT_ERROR
        same_worker = await pool.run("import lib.secret", tenant="a", modules=lib("quiz", QUIZ))
        assert same_worker.status is Status.SCRIPT_ERROR
        assert "'lib.secret' is not allowed" in same_worker.error.message


async def test_a_worker_that_lost_module_code_gets_it_again():
    """The host resends module code when the worker asks (NeedCode)."""
    async with WorkerPool(1) as pool:
        modules = lib("quiz", QUIZ)
        first = await pool.run("from lib import quiz\nprint(quiz.check(4))", modules=modules)
        assert first.output == "True\n"
        for worker in pool._workers:  # the host forgets what it sent
            worker.known.clear()
        again = await pool.run("from lib import quiz\nprint(quiz.check(5))", modules=modules)
        assert again.output == "False\n", again.describe()


async def test_modules_see_capabilities_and_named_globals_only(pool):
    module = lib("peek", "def peek():\n    return settings['x']\n\ndef who():\n    return user\n")
    script = "from lib import peek\nprint(peek.peek())\nprint(user)\npeek.who()"
    result = await pool.run(
        script,
        modules=module,
        globals={"settings": {"x": 1}, "user": {"id": 7}},
        module_globals=("settings",),
    )
    assert result.output == "1\n{'id': 7}\n"
    assert result.error.type == "NameError"
    assert result.error.file == "lib/peek.py"


async def test_a_bound_module_is_a_global_imported_on_first_use(pool):
    helpers = {
        "kit": compile_script(
            "print('kit loaded')\ndef twice(x):\n    return 2 * x\n", filename="<kit>"
        )
    }
    quiet = await pool.run("print('no kit')", modules=helpers, bind={"Kit": "kit"})
    assert quiet.output == "no kit\n"
    used = await pool.run(
        "print(Kit.twice(2))\nfrom lib import quiz\nprint(quiz.check(Kit.twice(2)))",
        modules={**helpers, **lib("quiz", QUIZ)},
        bind={"Kit": "kit"},
    )
    assert used.output == "kit loaded\n4\nTrue\n", used.describe()


async def test_errors_inside_a_platform_module_point_at_the_authors_line(pool):
    helpers = {"kit": compile_script("def half(x):\n    return x / 0\n", filename="<kit>")}
    result = await pool.run("x = 1\nKit.half(x)", modules=helpers, bind={"Kit": "kit"})
    assert result.error.type == "ZeroDivisionError"
    assert (result.error.file, result.error.line) == (None, 2)


@pytest.mark.parametrize(
    "names",
    [
        ["json.tools"],
        ["urllib"],
        ["lib._private"],
        ["lib", "lib.quiz"],
        ["lib-quiz"],
        ["lib..quiz"],
        [""],
    ],
)
async def test_a_host_cannot_give_modules_scripts_could_not_import_cleanly(pool, names):
    code = compile_script("x = 1", filename="m.py")
    with pytest.raises(ValueError):
        await pool.run("x = 1", modules=dict.fromkeys(names, code))


async def test_a_module_importing_itself_is_a_cycle(pool):
    result = await pool.run("import lib.me", modules=lib("me", "x = 1\nimport lib.me\n"))
    assert "circular import: lib.me -> lib.me" in result.error.message


async def test_a_module_may_use_a_bound_module_at_import(pool):
    modules = {
        "kit": compile_script("def twice(x):\n    return 2 * x\n", filename="<kit>"),
        **lib("uses", "FOUR = Kit.twice(2)\n"),
    }
    result = await pool.run(
        "from lib import uses\nprint(uses.FOUR)", modules=modules, bind={"Kit": "kit"}
    )
    assert result.output == "4\n", result.describe()


async def test_a_caught_import_error_leaves_the_run_able_to_import_again(pool):
    modules = {
        **lib("flaky", "x = 1\nBot.send('no')\n"),
        **lib("fine", "OK = True\n"),
    }
    script = (
        "try:\n    from lib import flaky\nexcept ImportError as e:\n    print('refused')\n"
        "from lib import fine\nprint(fine.OK)\ntry:\n    from lib import flaky\n"
        "except ImportError:\n    print('refused again')\n"
    )
    result = await pool.run(script, modules=modules, capabilities={"Bot.send": lambda c: None})
    assert result.output == "refused\nTrue\nrefused again\n", result.describe()


async def test_a_run_with_more_modules_than_a_worker_caches_is_refused(pool):
    code = compile_script("x = 1", filename="m.py")
    with pytest.raises(ValueError, match="at most"):
        await pool.run("x = 1", modules={f"lib.m{i}": code for i in range(300)})
