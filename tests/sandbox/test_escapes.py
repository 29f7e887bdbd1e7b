"""Escape and leak attempts: every one must fail cleanly, and nothing secret may reach the output.

Each row is a script that tries to reach something concrete (a real builtin, a frame's globals,
a host module, a file, the worker's socket) and PRINTS a marker with it if it got there. The
policy, the guards and the module facades must stop it with a compile or script error; the
worker must never crash. Below the corpus, the process boundary that holds if they ever fail:
the worker's user, environment, limits, root directory and network namespace, read from
``/proc`` on the host side. Last, state one run could leave behind for the next one.
"""

from __future__ import annotations

import os
import random
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from sandbox import CallRequest, WorkerPool
from sandbox.forkserver import WORKER_UID_BASE, ForkServer
from sandbox.result import Status

MARKER = "ESCAPED"
SECRETS = (
    MARKER,
    "root:x:0:0",  # /etc/passwd
    "<built-in function",  # a real builtin such as open, eval or __import__
    "<module 'sandbox",  # the host package
    "<module 'os'",
    "<frame",
    "<code object",
    "<traceback",
    "socket.socket",
    "f_globals",
    "'__builtins__'",
)

FW = "\uff3f"  # FULLWIDTH LOW LINE: NFKC-normalises to "_"


async def echo(request: CallRequest) -> list[object]:
    """A harmless capability offered to every escape attempt, so its internals are a target."""
    return list(request.args)


CAPABILITIES = {"Api.*": echo, "ping": echo}

# (id, script). Every script prints MARKER together with what it reached, if it reached it.
ESCAPES: list[tuple[str, str]] = [
    # --- dunder attributes, attribute syntax -----------------------------------------------
    ("class-attribute", "print('ESCAPED', (1).__class__)"),
    ("mro-attribute", "print('ESCAPED', int.__mro__)"),
    ("subclasses-attribute", "print('ESCAPED', object.__subclasses__())"),
    ("bases-attribute", "print('ESCAPED', bool.__bases__[0].__subclasses__())"),
    ("function-globals-attribute", "def f(): pass\nprint('ESCAPED', f.__globals__)"),
    ("function-builtins-attribute", "def f(): pass\nprint('ESCAPED', f.__builtins__['open'])"),
    ("class-dict-attribute", "class A: pass\nprint('ESCAPED', A.__dict__)"),
    ("legacy-func-globals", "def f(): pass\nprint('ESCAPED', f.func_globals)"),
    # --- the same names through getattr and computed strings --------------------------------
    ("getattr-class", "print('ESCAPED', getattr(1, '__class__'))"),
    (
        "getattr-subclasses-chain",
        "base = getattr(getattr(1, '__class__'), '__base__')\n"
        "print('ESCAPED', getattr(base, '__subclasses__')())",
    ),
    (
        "getattr-globals-builtins",
        "f = lambda: 0\nprint('ESCAPED', getattr(f, '__globals__')['__builtins__'])",
    ),
    (
        "getattr-concatenated-name",
        "f = lambda: 0\nname = '__' + 'glo' + 'bals__'\nprint('ESCAPED', getattr(f, name))",
    ),
    (
        "getattr-chr-built-name",
        "name = chr(95) * 2 + 'dict' + chr(95) * 2\nprint('ESCAPED', getattr(len, name))",
    ),
    ("getattr-with-default", "print('ESCAPED', getattr(1, '__class__', None) or 'nothing')"),
    ("mro-method", "print('ESCAPED', int.mro())"),
    ("mro-method-getattr", "print('ESCAPED', getattr(bool, 'mro')()[1])"),
    # --- generator and coroutine frames -----------------------------------------------------
    (
        "generator-frame-cve-2023-37271",
        "print('ESCAPED', (x for x in ()).gi_frame.f_back.f_globals)",
    ),
    (
        "generator-frame-getattr",
        "g = (x for x in ())\nprint('ESCAPED', getattr(getattr(g, 'gi_' + 'frame'), 'f_globals'))",
    ),
    ("generator-code", "g = (x for x in ())\nprint('ESCAPED', getattr(g, 'gi_code'))"),
    (
        "generator-yieldfrom-frame",
        """
        def inner():
            yield 1
        def outer():
            yield from inner()
        g = outer()
        next(g)
        print('ESCAPED', getattr(getattr(g, 'gi_yieldfrom'), 'gi_frame'))
        """,
    ),
    (
        "generator-reads-own-frame",
        """
        def gen():
            yield getattr(me, 'gi_frame').f_back
        me = gen()
        print('ESCAPED', next(me))
        """,
    ),
    ("async-def-coroutine-frame", "async def f():\n    return 1\nprint('ESCAPED', f().cr_frame)"),
    (
        "await-expression",
        "async def f():\n    await g()\nasync def g():\n    pass\nprint('ESCAPED', f())",
    ),
    ("async-generator-frame", "async def ag():\n    yield 1\nprint('ESCAPED', ag().ag_frame)"),
    ("coroutine-frame-getattr", "g = (x for x in ())\nprint('ESCAPED', getattr(g, 'cr_frame'))"),
    # --- tracebacks and exception internals -------------------------------------------------
    (
        "exception-traceback-attribute",
        """
        try:
            1 / 0
        except Exception as e:
            print('ESCAPED', e.__traceback__.tb_frame.f_globals)
        """,
    ),
    (
        "exception-traceback-getattr",
        """
        try:
            1 / 0
        except Exception as e:
            tb = getattr(e, '__traceback__')
            print('ESCAPED', getattr(tb, 'tb_' + 'frame'))
        """,
    ),
    (
        "exception-with-traceback",
        """
        try:
            1 / 0
        except Exception as e:
            same = e.with_traceback(None)
            print('ESCAPED', getattr(same, '__traceback__'))
        """,
    ),
    (
        "exception-context",
        """
        try:
            try:
                1 / 0
            except Exception:
                [].missing
        except Exception as e:
            print('ESCAPED', getattr(e, '__context__'))
        """,
    ),
    (
        "exception-cause",
        """
        try:
            try:
                1 / 0
            except Exception as inner:
                raise ValueError('x') from inner
        except ValueError as e:
            print('ESCAPED', getattr(e, '__cause__'))
        """,
    ),
    (
        "attributeerror-obj-cve-2024-47532",
        """
        import json
        try:
            json.missing
        except AttributeError as e:
            print('ESCAPED', e.obj)
        """,
    ),
    (
        "attributeerror-obj-getattr",
        """
        try:
            (lambda: 0).missing
        except AttributeError as e:
            print('ESCAPED', getattr(e, 'obj'))
        """,
    ),
    (
        "except-star-cve-2025-22153",
        """
        try:
            raise ValueError(1)
        except* ValueError as group:
            print('ESCAPED', group.exceptions)
        """,
    ),
    (
        "host-raised-exception-with-traceback",
        """
        try:
            print('x', file=[])
        except BaseException as e:
            tb = getattr(e.with_traceback(None), '__trace' + 'back__')
            print('ESCAPED', getattr(tb, 'tb_frame'))
        """,
    ),
    # --- str.format attribute and index traversal (CVE-2023-41039 style) --------------------
    ("format-attribute-field", "print('ESCAPED' + '{0.__class__}'.format(1))"),
    (
        "format-map-globals",
        "def f(): pass\nprint('ESCAPED' + '{a.__globals__}'.format_map({'a': f}))",
    ),
    ("str-format-unbound", "print('ESCAPED' + str.format('{0.__class__}', 1))"),
    (
        "format-via-getattr",
        "fmt = getattr('{0.__class__.__mro__}', 'format')\nprint('ESCAPED' + fmt(1))",
    ),
    (
        "format-index-field",
        "def f(): pass\nprint('ESCAPED' + '{0.__globals__[__builtins__]}'.format(f))",
    ),
    ("format-nested-spec-field", "print('ESCAPED' + '{0:{1.__class__}}'.format(1, 2))"),
    (
        "format-map-unbound-getattr",
        "print('ESCAPED' + getattr(str, 'format_map')('{a.__class__}', {'a': 1}))",
    ),
    (
        "format-on-str-subclass",
        "class S(str):\n    pass\nprint('ESCAPED' + S('{0.__class__}').format(1))",
    ),
    (
        "format-through-map",
        "print('ESCAPED' + list(map(str.format, ['{0.__class__}'], [1]))[0])",
    ),
    # --- NFKC identifiers that normalise to dunder names ------------------------------------
    ("nfkc-fullwidth-class", f"print('ESCAPED', (1).{FW}{FW}class{FW}{FW})"),
    ("nfkc-mixed-class", f"print('ESCAPED', (1)._{FW}class__)"),
    ("nfkc-getattr-string", f"print('ESCAPED', getattr(1, '{FW}{FW}class{FW}{FW}'))"),
    ("nfkc-dunder-import", f"print('ESCAPED', _{FW}import__('os'))"),
    ("nfkc-fullwidth-open", "print('ESCAPED', \uff4f\uff50\uff45\uff4e('/etc/passwd').read())"),
    ("nfkc-fullwidth-eval", "print('ESCAPED', \uff45\uff56\uff41\uff4c('1'))"),
    # --- attributes of allowed modules (the facades) ----------------------------------------
    ("json-codecs", "import json\nprint('ESCAPED', json.codecs)"),
    ("json-decoder", "import json\nprint('ESCAPED', json.decoder.scanstring)"),
    ("uuid-os", "import uuid\nprint('ESCAPED', uuid.os.environ)"),
    ("random-private-os", "import random\nprint('ESCAPED', random._os)"),
    ("random-private-os-getattr", "import random\nprint('ESCAPED', getattr(random, '_os'))"),
    ("re-compiler", "import re\nprint('ESCAPED', getattr(re, '_compiler'))"),
    (
        "string-formatter",
        "import string\nprint('ESCAPED', string.Formatter().get_field('0.__class__', [1], {}))",
    ),
    ("datetime-sys", "import datetime\nprint('ESCAPED', datetime.sys.modules['sandbox'])"),
    ("textwrap-re", "import textwrap\nprint('ESCAPED', textwrap.re)"),
    ("base64-binascii", "import base64\nprint('ESCAPED', base64.binascii)"),
    ("facade-members", "import json\nprint('ESCAPED', getattr(json, '_facade_members'))"),
    ("urllib-request", "import urllib\nprint('ESCAPED', urllib.request)"),
    (
        "random-bound-generator",
        "import random\nprint('ESCAPED', getattr(random.random, '__self__'))",
    ),
    # --- type, introspection builtins -------------------------------------------------------
    ("type-one-argument", "print('ESCAPED', type(1))"),
    ("type-three-arguments", "X = type('X', (), {})\nprint('ESCAPED', X)"),
    ("vars", "print('ESCAPED', vars())"),
    ("dir", "print('ESCAPED', dir())"),
    ("globals", "print('ESCAPED', globals())"),
    ("locals", "print('ESCAPED', locals())"),
    ("guard-by-name", "print('ESCAPED', _getattr_)"),
    ("print-collector-by-name", "print('ESCAPED', _print)"),
    ("builtins-name", "print('ESCAPED', builtins)"),
    # --- code execution and files -----------------------------------------------------------
    ("open-etc-passwd", "print('ESCAPED', open('/etc/passwd').read())"),
    ("exec", "exec(\"print('ESCAPED')\")"),
    ("eval", "print('ESCAPED', eval('1 + 1'))"),
    ("compile", "print('ESCAPED', compile('1', 'x', 'eval'))"),
    # --- imports ----------------------------------------------------------------------------
    ("dunder-import-call", "print('ESCAPED', __import__('os').environ)"),
    ("import-os", "import os\nprint('ESCAPED', os.environ)"),
    ("from-os-import-system", "from os import system\nprint('ESCAPED', system)"),
    ("import-os-path", "import os.path\nprint('ESCAPED', os.path)"),
    ("import-importlib", "import importlib\nprint('ESCAPED', importlib.import_module('os'))"),
    ("import-sys", "import sys\nprint('ESCAPED', sys.modules['sandbox'])"),
    ("import-ctypes", "import ctypes\nprint('ESCAPED', ctypes.CDLL(None))"),
    (
        "import-subprocess",
        "import subprocess\nprint('ESCAPED', subprocess.check_output(['cat', '/etc/passwd']))",
    ),
    ("import-socket", "import socket\nprint('ESCAPED', socket.socket(fileno=7))"),
    ("relative-import", "from . import worker\nprint('ESCAPED', worker)"),
    ("import-sandbox-worker", "import sandbox.worker\nprint('ESCAPED', sandbox.worker)"),
    ("from-builtins-import-open", "from builtins import open\nprint('ESCAPED', open)"),
    ("import-preloaded-unicodedata", "import unicodedata\nprint('ESCAPED', unicodedata)"),
    ("import-private-strptime", "import _strptime\nprint('ESCAPED', _strptime)"),
    ("from-json-import-private", "from json import decoder\nprint('ESCAPED', decoder)"),
    # A facade missing a name must not fall back to sys.modules["<package>.<name>"].
    ("from-collections-import-abc", "from collections import abc\nprint('ESCAPED', abc)"),
    ("from-urllib-import-request", "from urllib import request\nprint('ESCAPED', request)"),
    ("import-urllib-request", "import urllib.request\nprint('ESCAPED', urllib.request)"),
    # --- interactive builtins ---------------------------------------------------------------
    ("breakpoint", "breakpoint()\nprint('ESCAPED')"),
    ("help", "print('ESCAPED', help)"),
    ("input", "print('ESCAPED', input())"),
    ("memoryview", "print('ESCAPED', memoryview(b'x'))"),
    # --- writes to shared objects: module facades, builtins ---------------------------------
    ("write-module-facade-attribute", "import json\njson.dumps = print\nprint('ESCAPED')"),
    ("setattr-module-facade", "import json\nsetattr(json, 'dumps', len)\nprint('ESCAPED')"),
    ("write-builtin-type-attribute", "str.x = 1\nprint('ESCAPED')"),
    ("setattr-builtin-type", "setattr(int, 'real', 5)\nprint('ESCAPED')"),
    ("write-builtin-function-attribute", "len.x = 1\nprint('ESCAPED')"),
    ("write-capability-attribute", "Api.sendMessage = len\nprint('ESCAPED')"),
    (
        "augmented-assignment-on-module-facade",
        "import time\ntime.tzname += ('ESCAPED',)\nprint(time.tzname)",
    ),
    (
        "augmented-assignment-builds-format-walk",
        """
        class Box:
            pass
        box = Box()
        box.template = ''
        box.template += '{0.__class__}'
        print('ESCAPED' + box.template.format(1))
        """,
    ),
    # --- classes: super, metaclass, __init_subclass__ ---------------------------------------
    (
        "super-call",
        """
        class A:
            def get(self):
                return super()
        print('ESCAPED', A().get())
        """,
    ),
    ("metaclass-keyword", "class A(metaclass=dict):\n    pass\nprint('ESCAPED', A)"),
    (
        "init-subclass",
        """
        class A:
            def __init_subclass__(cls):
                print('ESCAPED', cls)
        class B(A):
            pass
        """,
    ),
    (
        "class-init-subclass-getattr",
        "class A: pass\nprint('ESCAPED', getattr(A, '__init_subclass__'))",
    ),
    # --- lambdas, partials ------------------------------------------------------------------
    (
        "lambda-default-binds-guard",
        "f = lambda g=_getattr_: g(1, '__class__')\nprint('ESCAPED', f())",
    ),
    ("lambda-default-getattr", "f = lambda g=getattr: g(1, '__class__')\nprint('ESCAPED', f())"),
    (
        "lambda-defaults-attribute",
        "f = lambda x=1: x\nprint('ESCAPED', getattr(f, '__defaults__'))",
    ),
    (
        "partial-func-self",
        "import functools\n"
        "p = functools.partial(print, 1)\n"
        "print('ESCAPED', getattr(p.func, '__self__'))",
    ),
    (
        "partial-of-getattr",
        "import functools\nget = functools.partial(getattr, 1)\nprint('ESCAPED', get('__class__'))",
    ),
    # --- library helpers that build code or walk names --------------------------------------
    (
        "namedtuple-code-in-field-name",
        "import collections\n"
        "P = collections.namedtuple('P', [\"x=__import__('os')\"])\nprint('ESCAPED', P)",
    ),
    (
        "namedtuple-dunder-field-name",
        "import collections\nP = collections.namedtuple('P', ['__class__'])\nprint('ESCAPED', P)",
    ),
    (
        "template-brace-attribute-walk",
        """
        import string
        class T(string.Template):
            braceidpattern = r'[^}]+'
        print('ESCAPED' + T('${a.__class__}').substitute(a=1))
        """,
    ),
    ("decimal-getcontext", "import decimal\nprint('ESCAPED', decimal.getcontext())"),
    ("print-to-file", "print('ESCAPED', file=[])"),
    ("printed-rebound", "printed = 'x'\nprint('ESCAPED', printed)"),
    ("printed-class", "print('x')\nprint('ESCAPED', getattr(printed, '__class__'))"),
    ("hashlib-file-digest", "import hashlib\nprint('ESCAPED', hashlib.file_digest)"),
    (
        "json-object-hook-getattr",
        "import json\n"
        "json.loads('{\"a\": 1}', object_hook=lambda d: print('ESCAPED', getattr(d, '__class__')))",
    ),
    # --- names that lie: str subclasses overriding what a guard could ask -------------------
    (
        "getattr-str-subclass-startswith",
        """
        class S(str):
            def startswith(self, *a):
                return False
        print('ESCAPED', getattr(1, S('__class__')))
        """,
    ),
    (
        "getattr-str-subclass-subclasses-chain",
        """
        class S(str):
            def startswith(self, *a):
                return False
        cls = getattr(getattr(1, S('__class__')), S('__base__'))
        print('ESCAPED', getattr(cls, S('__subclasses__'))())
        """,
    ),
    (
        "getattr-str-subclass-function-globals",
        """
        class S(str):
            def startswith(self, *a):
                return False
        def f():
            pass
        print('ESCAPED', getattr(f, S('__globals__'))['__builtins__'])
        """,
    ),
    (
        "getattr-str-subclass-default",
        """
        class S(str):
            def startswith(self, *a):
                return False
        print('ESCAPED', getattr(len, S('__self__'), None))
        """,
    ),
    (
        "hasattr-str-subclass",
        """
        class S(str):
            def startswith(self, *a):
                return False
        if hasattr(1, S('__class__')):
            print('ESCAPED', 'hasattr saw a dunder')
        """,
    ),
    (
        "setattr-str-subclass-dict",
        """
        class S(str):
            def startswith(self, *a):
                return False
        class A:
            pass
        a = A()
        setattr(a, S('__dict__'), {'x': 1})
        print('ESCAPED', a.x)
        """,
    ),
    (
        "setattr-str-subclass-class",
        """
        class S(str):
            def startswith(self, *a):
                return False
        class A:
            pass
        setattr(A(), S('__class__'), dict)
        print('ESCAPED', 'class swapped')
        """,
    ),
    (
        "format-str-subclass-template",
        """
        class T(str):
            pass
        print('ESCAPED', T('{0.__class__}').format(1))
        """,
    ),
    (
        "format-map-str-subclass-template",
        """
        class T(str):
            pass
        print('ESCAPED', str.format_map(T('{a.__class__}'), {'a': 1}))
        """,
    ),
    (
        "format-unbound-str-subclass-template",
        """
        class T(str):
            pass
        print('ESCAPED', str.format(T('{0.__class__.__mro__}'), 1))
        """,
    ),
    # --- capability objects -----------------------------------------------------------------
    ("namespace-invoke", "print('ESCAPED', getattr(Api, '_ns_invoke'))"),
    ("namespace-private-member", "print('ESCAPED', Api._ns_invoke)"),
    ("namespace-getattr-dunder", "print('ESCAPED', getattr(Api, '__getattr__'))"),
    ("capability-invoke", "print('ESCAPED', getattr(ping, '_cap_invoke'))"),
    ("capability-through-namespace", "print('ESCAPED', getattr(Api.sendMessage, '_cap_invoke'))"),
]


def _source(script: str) -> str:
    return textwrap.dedent(script).strip("\n") + "\n"


@pytest.mark.parametrize("script", [row[1] for row in ESCAPES], ids=[row[0] for row in ESCAPES])
async def test_escape_attempt_fails_cleanly_and_leaks_nothing(run, script):
    """The attempt ends in a compile or script error, never a crash, and prints no secret."""
    result = await run(_source(script), capabilities=CAPABILITIES, exceptions=["ApiError"])
    assert result.status in (Status.COMPILE_ERROR, Status.SCRIPT_ERROR), result.describe()
    assert result.error is not None
    for secret in SECRETS:
        assert secret not in result.output


def test_escape_corpus_is_large_and_ids_are_unique():
    """The corpus keeps at least 45 rows, each with its own id."""
    ids = [row[0] for row in ESCAPES]
    assert len(ids) >= 45
    assert len(set(ids)) == len(ids)


class TestWorkerIsolation:
    """The process boundary that holds even if the policy is ever escaped."""

    def test_pool_reports_the_isolation_it_applied(self, pool):
        """The pool's isolation report names network, filesystem, user and rlimits steps."""
        report = pool.isolation
        assert report["rlimits"] == "fsize=0 core=0 nofile=16 nproc=0"
        # Network namespaces, chroot and the switch to nobody need root (or unprivileged user
        # namespaces). These tests run as root locally and in CI, where all three must hold;
        # elsewhere the report must still say what was (not) applied.
        if os.geteuid() == 0:
            assert report["network"] == "namespace"
            assert report["filesystem"] == "empty chroot"
            assert report["user"] == "own uid per worker"
        else:
            assert {"network", "filesystem", "user"} <= report.keys()
            assert report["user"].startswith(f"uid {os.getuid()}")

    async def test_worker_process_is_confined_as_seen_from_proc(self, monkeypatch):
        """Real workers run as users of their own, with no environment, tight rlimits, no net."""
        monkeypatch.setenv("BOTBOX_TEST_SECRET", "s3cret")
        server = await ForkServer.start(max_memory=256 * 1024 * 1024)
        try:
            worker, other = await server.fork(), await server.fork()
            proc = Path(f"/proc/{worker.pid}")
            status = (proc / "status").read_text()
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            limits = (proc / "limits").read_text()
            assert "Max file size             0                    0" in limits
            assert "Max open files            16                   16" in limits
            assert "Max core file size        0                    0" in limits
            assert "Max processes             0                    0" in limits
            assert fields["NoNewPrivs"].strip() == "1"
            if os.geteuid() == 0:
                # As root each worker takes a user id no other live worker has, with no
                # capabilities, inside the fork server's empty root and network namespace.
                uids = {worker.uid, other.uid}
                assert len(uids) == 2 and all(u is not None and u >= WORKER_UID_BASE for u in uids)
                assert fields["Uid"].split() == [str(worker.uid)] * 4
                assert fields["Gid"].split() == [str(worker.uid)] * 4
                assert int(fields["CapEff"], 16) == 0
                assert (proc / "environ").read_bytes() == b""
                assert os.readlink(proc / "root") == os.path.realpath(worker.root)
                assert os.readlink(proc / "root") != "/"
                assert os.readlink(proc / "ns" / "net") != os.readlink("/proc/self/ns/net")
                descriptors = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
                assert len(descriptors) <= 4
                assert all(d == "/dev/null" or d.startswith("socket:") for d in descriptors)
                assert fields["NSsid"].split()[0] == str(worker.pid)  # a session of its own
            else:
                # Without root the worker keeps our uid, but it marks itself non-dumpable, so
                # even its owner cannot read its environment or follow its root link.
                assert fields["Uid"].split()[0] == str(os.getuid())
                with pytest.raises(PermissionError):
                    (proc / "environ").read_bytes()
            assert "s3cret" not in status
        finally:
            await server.close()
        assert not Path(worker.root).exists()
        assert not worker.alive and not other.alive


# (id, attacker script, victim script, the victim's exact output on a clean worker)
LEFTOVERS: list[tuple[str, str, str, str]] = [
    (
        "decimal-context-held-by-suspended-generator",
        """
        import decimal
        def held():
            with decimal.localcontext(prec=3):
                yield
        paused = held()
        next(paused)
        """,
        "import decimal\nprint(decimal.Decimal(1) / decimal.Decimal(3))",
        "0.3333333333333333333333333333\n",
    ),
    (
        "decimal-context-changed-inside-with",
        """
        import decimal
        def held():
            with decimal.localcontext() as ctx:
                ctx.prec = 2
                ctx.rounding = decimal.ROUND_UP
                yield
        paused = held()
        next(paused)
        """,
        "import decimal\nprint(decimal.Decimal(2) / decimal.Decimal(3))",
        "0.6666666666666666666666666667\n",
    ),
    (
        "attribute-on-shared-capability-error-class",
        """
        try:
            ApiError.code = 999
        except TypeError:
            pass
        try:
            setattr(ApiError, 'kind', 'forged')
        except TypeError:
            pass
        """,
        "print(hasattr(ApiError, 'code'), hasattr(ApiError, 'kind'))",
        "False False\n",
    ),
    (
        "module-facade-attribute-replaced",
        """
        import json
        try:
            json.dumps = len
        except TypeError:
            pass
        """,
        "import json\nprint(json.dumps([1]))",
        "[1]\n",
    ),
    (
        "global-names-of-the-previous-run",
        "secret_token = 'tok-123'\ndef helper():\n    return secret_token",
        """
        try:
            print(secret_token)
        except NameError:
            print('clean')
        """,
        "clean\n",
    ),
]


@pytest_asyncio.fixture(scope="module")
async def lone_pool() -> AsyncIterator[WorkerPool]:
    """A one-worker pool, so consecutive runs are known to share the same worker process."""
    async with WorkerPool(1) as single:
        yield single


class TestCrossRunIsolation:
    """One run (one bot's script) must leave nothing behind that the next run can see."""

    async def test_random_seed_does_not_carry_into_the_next_run(self, lone_pool):
        """A seed set in one run does not make the next run's random numbers predictable."""
        seeded = random.Random(1234).random()  # what a leaked seed reproduces
        first = await lone_pool.run("import random\nrandom.seed(1234)\nprint(random.random())")
        second = await lone_pool.run("import random\nprint(random.random())")
        assert first.output == f"{seeded}\n"
        assert second.status is Status.OK
        assert second.output != first.output

    @pytest.mark.parametrize(
        ("attacker", "victim", "expected"),
        [row[1:] for row in LEFTOVERS],
        ids=[row[0] for row in LEFTOVERS],
    )
    async def test_state_left_by_one_run_is_invisible_to_the_next(
        self, lone_pool, attacker, victim, expected
    ):
        """Whatever the first run tries to leave behind, the next run sees a clean worker."""
        await lone_pool.run(textwrap.dedent(attacker), exceptions=["ApiError"])
        result = await lone_pool.run(textwrap.dedent(victim), exceptions=["ApiError"])
        assert result.status is Status.OK, result.describe()
        assert result.output == expected

    async def test_finalizer_of_a_previous_run_cannot_call_the_next_runs_capabilities(
        self, lone_pool
    ):
        """A generator's ``finally`` left by one run never runs inside another run."""
        seen: list[CallRequest] = []

        async def record(request: CallRequest) -> str:
            seen.append(request)
            return "reply meant for the victim"

        attacker = """
        def held():
            try:
                yield 1
            finally:
                answer = Api.leak('from the attacker')
                Api.leak('attacker read: ' + str(answer))
        paused = held()
        next(paused)
        """
        victim = "junk = [[i] for i in range(200000)]\nprint('victim done')"
        first = await lone_pool.run(textwrap.dedent(attacker), capabilities={"Api.*": record})
        assert first.status is Status.OK
        victims = [await lone_pool.run(victim, capabilities={"Api.*": record}) for _ in range(3)]
        leaked = [r for r in seen if "attacker" in str(r.args)]
        assert leaked == []
        for result in victims:
            assert result.status is Status.OK, result.describe()
            assert result.calls == ()
