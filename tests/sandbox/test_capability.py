"""Capabilities: host functions scripts call, including scripts run in place (nesting)."""

from __future__ import annotations

from sandbox import (
    CallRequest,
    CapabilityError,
    Limits,
    Response,
    RunInPlace,
    Status,
    StopScript,
)
from sandbox.capability import wait_budget


async def test_a_nested_script_returns_its_value_to_the_caller(pool):
    """RunInPlace runs another script inside the caller; its top-level return is the result."""
    inner = pool.compile("print('inner sees', who)\nreturn Api.ping() + 1\n", filename="inner.py")

    async def ping(call: CallRequest) -> int:
        return 41

    async def nest(call: CallRequest) -> RunInPlace:
        return RunInPlace(inner, {"who": call.args[0]}, {"Api.ping": ping})

    result = await pool.run(
        "v = Bot.runCommand('me')\nprint('got', v)", capabilities={"Bot.runCommand": nest}
    )
    assert result.ok
    assert result.output == "inner sees me\ngot 42\n"
    assert [c.name for c in result.calls] == ["Bot.runCommand", "Api.ping"]


async def test_the_caller_keeps_its_own_capabilities_after_a_nested_run(pool):
    """Capabilities of the nested script apply only while it runs."""
    inner = pool.compile("x = 1", filename="inner.py")

    async def nest(call: CallRequest) -> RunInPlace:
        return RunInPlace(inner, {}, {})

    async def ping(call: CallRequest) -> str:
        return "pong"

    result = await pool.run(
        "Bot.runCommand()\nprint(Api.ping())",
        capabilities={"Bot.runCommand": nest, "Api.ping": ping},
    )
    assert result.output == "pong\n"


async def test_an_error_in_a_nested_script_propagates_with_frames_from_both_files(pool):
    """A nested failure is the caller's failure, with each frame naming its own file and line."""
    bad = pool.compile("def f():\n    return 1 / 0\nf()\n", filename="bad.py")

    async def nest(call: CallRequest) -> RunInPlace:
        return RunInPlace(bad, {}, {})

    result = await pool.run(
        "print('before')\nBot.runCommand()\n", capabilities={"Bot.runCommand": nest}
    )
    assert result.status is Status.SCRIPT_ERROR
    assert result.error.type == "ZeroDivisionError"
    assert [(f.file, f.line, f.text) for f in result.error.traceback] == [
        ("<script>", 2, "Bot.runCommand()"),
        ("bad.py", 3, "f()"),
        ("bad.py", 2, "return 1 / 0"),
    ]


async def test_a_nested_script_that_does_not_compile_raises_in_the_caller(pool):
    """The caller sees a catchable error naming the nested script's compile problem."""
    broken = pool.compile("x = (", filename="broken.py")

    async def nest(call: CallRequest) -> RunInPlace:
        return RunInPlace(broken, {}, {})

    result = await pool.run(
        "try:\n    Bot.runCommand()\nexcept Exception as e:\n    print('caught', e)\n",
        capabilities={"Bot.runCommand": nest},
    )
    assert result.ok
    assert "caught line 1: SyntaxError" in result.output


async def test_endless_nesting_is_stopped(pool):
    """A script that runs itself forever is stopped by the nesting bound, not by a crash."""
    loop = pool.compile("Bot.runCommand()", filename="loop.py")

    async def nest(call: CallRequest) -> RunInPlace:
        return RunInPlace(loop, {}, {"Bot.runCommand": nest})

    result = await pool.run(loop, capabilities={"Bot.runCommand": nest})
    assert result.status in {Status.LIMIT_EXCEEDED, Status.SCRIPT_ERROR}
    assert result.status is not Status.CRASHED
    assert (await pool.run("print(1)")).ok


async def test_a_handler_bug_is_a_clean_error_for_the_script(pool):
    """A host handler that raises an unexpected exception gives the script a generic error."""

    async def broken(call: CallRequest) -> None:
        raise RuntimeError("database password is hunter2")

    result = await pool.run(
        "try:\n    Api.x()\nexcept Exception as e:\n    print(e)\n", capabilities={"Api.*": broken}
    )
    assert result.output == "Api.x failed inside the host\n"
    assert "hunter2" not in result.output


async def test_a_capability_that_is_not_offered_is_a_catchable_error(pool):
    """Calling a name the host did not register is an error naming it."""

    async def never(call: CallRequest) -> None:
        raise AssertionError("not called")

    result = await pool.run("print(Nope.x())", capabilities={"Nope.y": never})
    assert result.status is Status.SCRIPT_ERROR
    assert "Nope has no 'x'" in result.error.message


async def test_a_handler_can_end_the_script_like_a_return(pool):
    """StopScript from a handler ends the script at once, as ok with the given value."""

    async def finish(call: CallRequest) -> None:
        raise StopScript({"sent": call.args[0]})

    result = await pool.run(
        "print('before')\nres.json('body')\nprint('after')", capabilities={"res.json": finish}
    )
    assert result.ok
    assert result.output == "before\n"
    assert result.returned
    assert result.value == {"sent": "body"}


async def test_deferred_calls_skip_the_round_trip_and_run_after_the_script(pool):
    """Deferred capabilities return None at once; the host runs them in order afterwards."""
    seen: list[tuple[str, tuple[object, ...]]] = []

    async def record(call: CallRequest) -> None:
        seen.append((call.name, call.args))

    result = await pool.run(
        "res.set('a', 1)\nprint('between')\nres.text('body')\nprint('never')",
        capabilities={"res.set": record, "res.text": record},
        deferred={"res.set": False, "res.text": True},
    )
    assert result.ok
    assert result.output == "between\n"
    assert seen == [("res.set", ("a", 1)), ("res.text", ("body",))]
    assert [c.name for c in result.calls] == ["res.set", "res.text"]


async def test_a_refused_deferred_call_fails_the_run_at_its_line(pool):
    """A deferred handler's CapabilityError fails the run and names the calling line."""

    async def refuse(call: CallRequest) -> None:
        raise CapabilityError("bad header name", kind="ResError")

    result = await pool.run(
        "x = 1\nres.set('bad name', 1)\n",
        capabilities={"res.set": refuse},
        deferred={"res.set": False},
    )
    assert result.status is Status.SCRIPT_ERROR
    assert (result.error.type, result.error.message, result.error.line) == (
        "ResError",
        "bad header name",
        2,
    )


async def test_deferred_calls_of_a_failed_script_never_run(pool):
    """If the script fails after a deferred call, its handler is not run."""
    ran: list[str] = []

    async def record(call: CallRequest) -> None:
        ran.append(call.name)

    result = await pool.run(
        "res.set('a', 1)\n1 / 0\n", capabilities={"res.set": record}, deferred={"res.set": False}
    )
    assert result.status is Status.SCRIPT_ERROR
    assert ran == []


LYING_DICT = """
class D(dict):
    def items(self):
        return [('lie', True)]
    def keys(self):
        return ['lie']
    def get(self, key, default=None):
        return 'lie'
"""


async def test_a_dict_subclass_argument_arrives_as_the_data_it_holds(pool):
    """The host gets what a dict subclass really holds, never what its overridden items() says."""
    seen: list[object] = []

    async def record(call: CallRequest) -> None:
        seen.append((call.args, call.kwargs))

    result = await pool.run(
        LYING_DICT + "Bot.setProperty('k', D(score=3), opts=D(a=[D(b=1)]))\n",
        capabilities={"Bot.setProperty": record},
    )
    assert result.ok, result.describe()
    assert seen == [(("k", {"score": 3}), {"opts": {"a": [{"b": 1}]}})]
    args, kwargs = seen[0]
    assert type(args[1]) is dict and type(kwargs["opts"]["a"][0]) is dict


async def test_a_deferred_call_holds_plain_data_taken_during_the_run(pool):
    """A deferred call's value is copied to plain data at the call; later changes do not count."""
    seen: list[object] = []

    async def record(call: CallRequest) -> None:
        seen.append(call.args[0])

    result = await pool.run(
        LYING_DICT + "body = D(a=1)\nres.json(body)\n",
        capabilities={"res.json": record},
        deferred={"res.json": True},
    )
    assert result.ok, result.describe()
    assert seen == [{"a": 1}]
    assert type(seen[0]) is dict


async def test_subclasses_of_scalars_and_sequences_cross_as_their_base_values(pool):
    """str, int, float, list and tuple subclasses cross as exact base-type values."""
    seen: list[object] = []

    async def record(call: CallRequest) -> None:
        seen.extend(call.args)

    result = await pool.run(
        """
        class S(str):
            def upper(self):
                return 'lie'
        class I(int):
            pass
        class F(float):
            pass
        class L(list):
            def copy(self):
                return ['lie']
        class T(tuple):
            pass
        ping(S('word'), I(7), F(1.5), L([1, S('x')]), T((2, 3)), {I(4): 'four'})
        """.replace("\n        ", "\n"),
        capabilities={"ping": record},
    )
    assert result.ok, result.describe()
    assert seen == ["word", 7, 1.5, [1, "x"], [2, 3], {"4": "four"}]
    assert [type(v) for v in seen] == [str, int, float, list, list, dict]
    assert type(seen[3][1]) is str


async def test_a_value_that_is_not_data_is_refused_inside_the_run_with_its_place(pool):
    """An object that is not JSON data fails the call with a TypeError naming where it sits."""
    calls: list[object] = []

    async def record(call: CallRequest) -> None:
        calls.append(call)

    result = await pool.run(
        "class A:\n    pass\nping({'deep': [1, A()]})\n", capabilities={"ping": record}
    )
    assert result.status is Status.SCRIPT_ERROR
    assert result.error.type == "TypeError"
    assert "argument[0]['deep'][1] is a A" in result.error.message
    assert result.error.line == 3
    assert calls == []


async def test_a_returned_dict_subclass_is_reported_as_its_data(pool):
    """A top-level return of a lying dict subclass reaches the host as the data it holds."""
    result = await pool.run(LYING_DICT + "return D(x=1)\n")
    assert result.ok and result.returned
    assert result.value == {"x": 1}


async def test_a_syntax_error_subclass_cannot_smuggle_a_line_object(pool):
    """A script's SyntaxError subclass with an object as lineno reports a plain line number."""
    result = await pool.run(
        LYING_DICT
        + "class E(SyntaxError):\n    lineno = property(lambda self: D(a=1))\nraise E('x')\n"
    )
    assert result.status is Status.SCRIPT_ERROR
    assert result.error.type == "E"
    assert result.error.line == 11


async def test_a_failing_handler_is_logged_once_a_minute_not_once_a_call(pool, caplog):
    """A script calling a broken capability 20 times costs the server log one line."""

    async def broken(call: CallRequest) -> None:
        raise RuntimeError("bug in the host")

    with caplog.at_level("ERROR", logger="sandbox.pool"):
        result = await pool.run(
            "for i in range(20):\n    try:\n        oops_once()\n    except Exception:\n"
            "        pass\n",
            capabilities={"oops_once": broken},
        )
    assert result.ok
    assert [c.ok for c in result.calls] == [False] * 20
    lines = [r for r in caplog.records if "oops_once" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is not None


async def test_paced_waits_do_not_count_against_the_wall_clock_limit(pool):
    """A handler that sleeps through its run's WaitBudget pushes the wall deadline back."""

    async def paced(call: CallRequest) -> str:
        budget = wait_budget()
        assert budget is not None
        await budget.sleep(0.6)
        return "sent"

    result = await pool.run(
        "for i in range(4):\n    Api.send()\nprint('done')",
        capabilities={"Api.send": paced},
        limits=Limits(wall_seconds=1, cpu_seconds=0.5, wait_seconds=5),
    )
    assert result.ok, result.describe()
    assert result.output == "done\n"
    assert result.waited_seconds >= 2.4
    assert result.wall_seconds >= 2.4  # four waits of 0.6 s under a 1 s wall limit


async def test_a_wait_past_wait_seconds_ends_the_run_without_sleeping(pool):
    """The wait that would pass wait_seconds ends the run as limit_exceeded, at once."""
    slept: list[float] = []

    async def paced(call: CallRequest) -> str:
        budget = wait_budget()
        assert budget is not None
        await budget.sleep(float(call.args[0]), sleep=lambda s: _record(slept, s))
        return "sent"

    result = await pool.run(
        "Api.send(1)\ntry:\n    Api.send(2)\nexcept Exception:\n    print('caught')\n",
        capabilities={"Api.send": paced},
        limits=Limits(wait_seconds=2.5),
    )
    assert result.status is Status.LIMIT_EXCEEDED
    assert result.breach is not None
    assert result.breach.limit == "wait_seconds"
    assert result.output == ""  # a limit cannot be caught by the script
    assert slept == [1.0]
    assert "would pass this run's wait_seconds" in (result.calls[-1].error or "")


async def test_handlers_outside_a_run_have_no_wait_budget():
    """wait_budget() is None where no run is being served."""
    assert wait_budget() is None


async def _record(slept: list[float], seconds: float) -> None:
    slept.append(seconds)


async def _page(call: CallRequest) -> Response:
    return Response(200, {"content-type": "application/json"}, '{"n": [1, 2]}', "http://x/")


async def test_a_response_answer_is_a_read_only_object_with_json_parsed_in_the_worker(pool):
    """A handler's Response reaches the script as attributes and json(); changing the headers
    dict the script got changes nothing else, and the attributes cannot be set."""
    result = await pool.run(
        "r = HTTP.get()\n"
        "h = r.headers\nh['x'] = '1'\n"
        "print(r.status, r.ok, r.json()['n'][1], sorted(r.headers), r.url, r)\n"
        "try:\n    r.status = 500\nexcept TypeError:\n    print('TypeError')\n"
        "try:\n    getattr(r, '_text')\nexcept AttributeError:\n    print('AttributeError')\n",
        capabilities={"HTTP.get": _page},
    )
    assert result.ok, result.error
    assert result.output == (
        "200 True 2 ['content-type'] http://x/ <Response 200>\nTypeError\nAttributeError\n"
    )


async def test_a_response_that_is_not_json_raises_a_value_error_the_script_can_catch(pool):
    async def text(call: CallRequest) -> Response:
        return Response(404, {}, "<html>", "http://x/")

    result = await pool.run(
        "r = HTTP.get()\ntry:\n    r.json()\nexcept ValueError:\n    print('no', r.ok)\n",
        capabilities={"HTTP.get": text},
    )
    assert result.output == "no False\n"
