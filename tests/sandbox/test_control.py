"""Control corpus: ordinary scripts a bot author writes MUST run, with exactly this output.

The escape corpus proves the sandbox refuses what it should; this one proves it does not refuse
plain Python on the way. Then the contract around a run: import errors that name the allowed
modules, tracebacks in the author's lines only, globals, capabilities and their errors.
"""

from __future__ import annotations

import copy
import random

import pytest

from sandbox import ALLOWED_MODULES, CallRequest, CapabilityError
from sandbox.result import Status

# (id, script, exact expected output)
CONTROLS: list[tuple[str, str, str]] = [
    (
        "functions-and-default-arguments",
        """
        def greet(name, greeting="hello", *, punct="!"):
            return greeting + ", " + name + punct
        print(greet("ann"))
        print(greet("bob", "hi", punct="?"))
        """,
        "hello, ann!\nhi, bob?\n",
    ),
    (
        "closures",
        """
        def make_adder(n):
            def add(x):
                return x + n
            return add
        add3 = make_adder(3)
        print(add3(4), make_adder(10)(1))
        """,
        "7 11\n",
    ),
    (
        "class-with-init-methods-and-attribute-writes",
        """
        class Counter:
            def __init__(self, start):
                self.value = start
            def bump(self, by=1):
                self.value = self.value + by
                return self
        c = Counter(5).bump().bump(10)
        c.label = "clicks"
        print(c.label, c.value)
        """,
        "clicks 16\n",
    ),
    (
        "inheritance-and-overriding",
        """
        class Animal:
            def __init__(self, name):
                self.name = name
            def speak(self):
                return self.name + " makes " + self.sound()
            def sound(self):
                return "a sound"
        class Dog(Animal):
            def sound(self):
                return "woof"
        d = Dog("rex")
        print(d.speak(), isinstance(d, Animal), issubclass(Dog, Animal))
        """,
        "rex makes woof True True\n",
    ),
    (
        "property-staticmethod-classmethod",
        """
        class Temp:
            def __init__(self, c):
                self.c = c
            @property
            def f(self):
                return self.c * 9 / 5 + 32
            @staticmethod
            def unit():
                return "F"
            @classmethod
            def freezing(cls):
                return cls(0)
        print(Temp(100).f, Temp.unit(), Temp.freezing().f)
        """,
        "212.0 F 32.0\n",
    ),
    (
        "comparison-dunders-on-own-class",
        """
        class V:
            def __init__(self, n):
                self.n = n
            def __lt__(self, other):
                return self.n < other.n
            def __eq__(self, other):
                return self.n == other.n
        print([v.n for v in sorted([V(3), V(1), V(2)])], V(1) == V(1))
        """,
        "[1, 2, 3] True\n",
    ),
    (
        "comprehensions",
        """
        nums = [1, 2, 3, 4]
        print([n * n for n in nums if n % 2 == 0])
        print({n: n * 2 for n in nums})
        print(sorted({n % 3 for n in nums}))
        print([(a, b) for a in range(2) for b in "xy"])
        """,
        "[4, 16]\n{1: 2, 2: 4, 3: 6, 4: 8}\n[0, 1, 2]\n[(0, 'x'), (0, 'y'), (1, 'x'), (1, 'y')]\n",
    ),
    (
        "generators-with-yield",
        """
        def countdown(n):
            while n > 0:
                yield n
                n -= 1
        def evens():
            yield from (x for x in range(6) if x % 2 == 0)
        print(list(countdown(3)), list(evens()), sum(x for x in range(5)))
        """,
        "[3, 2, 1] [0, 2, 4] 10\n",
    ),
    (
        "f-strings-with-format-specs",
        """
        x = 42
        pi = 3.14159
        name = "bot"
        print(f"[{x:>5}] [{x:<4}] [{name!r}] [{pi:.2f}] [{x:05d}] [{x:#x}] [{1234567:,}]")
        """,
        "[   42] [42  ] ['bot'] [3.14] [00042] [0x2a] [1,234,567]\n",
    ),
    (
        "str-format-with-simple-fields",
        """
        print("{} {name}".format(1, name="a"))
        print("{0:>4}|{1:.1f}".format(3, 2.25))
        print("{a}-{b}".format_map({"a": 1, "b": 2}))
        print(str.format("{}+{}", 1, 2))
        """,
        "1 a\n   3|2.2\n1-2\n1+2\n",
    ),
    (
        "percent-formatting",
        """
        print("%s has %d items costing %.2f" % ("cart", 3, 9.5))
        print("%(who)s!" % {"who": "hi"})
        """,
        "cart has 3 items costing 9.50\nhi!\n",
    ),
    (
        "try-except-finally",
        """
        def div(a, b):
            try:
                return a / b
            except ZeroDivisionError as e:
                return "error: " + str(e)
            finally:
                print("tried", a, b)
        print(div(1, 2))
        print(div(1, 0))
        """,
        "tried 1 2\n0.5\ntried 1 0\nerror: division by zero\n",
    ),
    (
        "custom-exceptions",
        """
        class BotError(Exception):
            pass
        class NotFound(BotError):
            pass
        def find(user_id):
            error = NotFound("no such user", user_id)
            error.code = 404
            raise error
        try:
            find(7)
        except BotError as e:
            print("caught", e.code, e.args, isinstance(e, NotFound))
        """,
        "caught 404 ('no such user', 7) True\n",
    ),
    (
        "sorting-with-key-lambdas",
        """
        users = [{"name": "bo", "age": 30}, {"name": "al", "age": 25}, {"name": "cy", "age": 30}]
        print([u["name"] for u in sorted(users, key=lambda u: (-u["age"], u["name"]))])
        print(sorted(["b", "A", "c"], key=str.lower), max([3, 1, 2], key=lambda n: -n))
        """,
        "['bo', 'cy', 'al']\n['A', 'b', 'c'] 1\n",
    ),
    (
        "unpacking",
        """
        a, *b = [1, 2, 3]
        (c, d), e = (4, 5), 6
        first, *middle, last = "hello"
        for k, v in [("x", 1), ("y", 2)]:
            print(k, v, end=" ")
        print(a, b, c, d, e, first, middle, last)
        """,
        "x 1 y 2 1 [2, 3] 4 5 6 h ['e', 'l', 'l'] o\n",
    ),
    (
        "augmented-assignment-on-list-and-dict-items",
        """
        counts = {"a": 1}
        counts["a"] += 1
        scores = [10, 20]
        scores[1] *= 3
        print(counts, scores)
        """,
        "{'a': 2} [10, 60]\n",
    ),
    (
        "augmented-assignment-on-own-instance-attribute",
        """
        class Tally:
            def __init__(self):
                self.total = 0
            def add(self, n):
                self.total += n
        t = Tally()
        t.add(2)
        t.add(3)
        print(t.total)
        """,
        "5\n",
    ),
    (
        "global-statement-and-name-augmented-assignment",
        """
        count = 0
        def hit():
            global count
            count += 1
        hit()
        hit()
        print(count)
        """,
        "2\n",
    ),
    (
        "dict-and-list-mutation",
        """
        d = {"b": 2}
        d["a"] = 1
        d.update(c=3)
        del d["b"]
        items = [3, 1]
        items.append(2)
        items[0] = 0
        items.extend([9])
        items.sort()
        del items[-1]
        print(sorted(d.items()), items, d.pop("c"), d.setdefault("z", []))
        """,
        "[('a', 1), ('c', 3)] [0, 1, 2] 3 []\n",
    ),
    (
        "isinstance-getattr-default-hasattr-on-own-objects",
        """
        class Box:
            size = 3
        b = Box()
        print(isinstance(b, Box), getattr(b, "size"), getattr(b, "color", "none"))
        print(hasattr(b, "size"), hasattr(b, "color"), isinstance(1, (int, str)))
        """,
        "True 3 none\nTrue False True\n",
    ),
    (
        "decimal-localcontext-documented-idiom",
        """
        import decimal
        with decimal.localcontext() as ctx:
            ctx.prec = 5
            print(decimal.Decimal(1) / decimal.Decimal(7))
        print(decimal.Decimal(1) / decimal.Decimal(8))
        """,
        "0.14286\n0.125\n",
    ),
    (
        "decimal-localcontext-keyword-arguments",
        """
        import decimal
        with decimal.localcontext(prec=4, rounding=decimal.ROUND_DOWN):
            print(decimal.Decimal(2) / decimal.Decimal(3))
        print(decimal.Decimal("1.10") + decimal.Decimal("2.20"))
        """,
        "0.6666\n3.30\n",
    ),
    (
        "module-json",
        """
        import json
        data = json.loads('{"b": [1, 2], "a": null}')
        print(json.dumps(data, sort_keys=True), data["b"][1])
        try:
            json.loads("{")
        except json.JSONDecodeError:
            print("bad json")
        """,
        '{"a": null, "b": [1, 2]} 2\nbad json\n',
    ),
    (
        "module-math",
        """
        import math
        print(math.sqrt(16), math.floor(2.7), math.gcd(12, 18), round(math.pi, 3))
        print(math.isclose(math.sin(0), 0.0), math.factorial(5), math.comb(5, 2))
        """,
        "4.0 2 6 3.142\nTrue 120 10\n",
    ),
    (
        "module-re",
        r"""
        import re
        m = re.match(r"(\w+)@(\w+)\.com", "ann@example.com")
        print(m.group(1), m.group(2), re.findall(r"\d+", "a1b22c333"))
        found = re.compile("X", re.IGNORECASE).search("axb")
        print(re.sub(r"\s+", " ", "a   b \n c"), found.start())
        print(re.split(",", "a,b,c"), bool(re.fullmatch("[a-z]+", "abc")))
        """,
        "ann example ['1', '22', '333']\na b c 1\n['a', 'b', 'c'] True\n",
    ),
    (
        "module-datetime",
        """
        import datetime
        d = datetime.date(2024, 1, 31) + datetime.timedelta(days=1)
        t = datetime.datetime(2024, 3, 1, 12, 30, tzinfo=datetime.timezone.utc)
        print(d.isoformat(), t.isoformat(), t.strftime("%d.%m.%Y %H:%M"))
        print(datetime.date.fromisoformat("2024-05-06").weekday(), (t - t).total_seconds())
        """,
        "2024-02-01 2024-03-01T12:30:00+00:00 01.03.2024 12:30\n0 0.0\n",
    ),
    (
        "datetime-and-time-strptime",
        """
        import datetime
        import time
        print(datetime.datetime.strptime("2024-05-06 07:08", "%Y-%m-%d %H:%M").isoformat())
        print(time.strptime("06.05.2024", "%d.%m.%Y").tm_yday)
        """,
        "2024-05-06T07:08:00\n127\n",
    ),
    (
        "module-time",
        """
        import time
        start = time.monotonic()
        print(time.time() > 1.6e9, time.monotonic() >= start)
        print(time.strftime("%Y-%m-%d", time.gmtime(0)), time.gmtime(86400).tm_mday)
        """,
        "True True\n1970-01-01 2\n",
    ),
    (
        "module-statistics",
        """
        import statistics
        data = [2, 4, 4, 4, 5, 5, 7, 9]
        print(statistics.mean(data), statistics.median(data), statistics.pstdev(data))
        print(statistics.mode(data), statistics.median_low([1, 3, 5, 7]))
        """,
        "5 4.5 2.0\n4 3\n",
    ),
    (
        "module-collections",
        """
        import collections
        c = collections.Counter("abracadabra")
        print(c.most_common(2))
        dd = collections.defaultdict(list)
        dd["x"].append(1)
        dd["x"].append(2)
        Point = collections.namedtuple("Point", ["x", "y"])
        p = Point(1, y=2)
        q = collections.deque([1, 2], maxlen=3)
        q.appendleft(0)
        q.append(3)
        od = collections.OrderedDict(a=1)
        od["b"] = 2
        print(dict(dd), p.x + p.y, p, list(q), list(od))
        """,
        "[('a', 5), ('b', 2)]\n{'x': [1, 2]} 3 Point(x=1, y=2) [1, 2, 3] ['a', 'b']\n",
    ),
    (
        "module-itertools",
        """
        import itertools
        print(list(itertools.islice(itertools.count(10, 5), 3)))
        print(list(itertools.chain([1], (2, 3))), list(itertools.permutations("ab")))
        print([(k, len(list(g))) for k, g in itertools.groupby("aaabcc")])
        print(list(itertools.accumulate([1, 2, 3])), list(itertools.pairwise("abc")))
        """,
        "[10, 15, 20]\n[1, 2, 3] [('a', 'b'), ('b', 'a')]\n[('a', 3), ('b', 1), ('c', 2)]\n"
        "[1, 3, 6] [('a', 'b'), ('b', 'c')]\n",
    ),
    (
        "module-functools",
        """
        import functools
        print(functools.reduce(lambda a, b: a * b, [1, 2, 3, 4]))
        double = functools.partial(lambda a, b: a * b, 2)
        calls = []
        @functools.lru_cache(maxsize=None)
        def fib(n):
            calls.append(n)
            return n if n < 2 else fib(n - 1) + fib(n - 2)
        print(double(21), fib(20), len(calls))
        """,
        "24\n42 6765 21\n",
    ),
    (
        "module-random-seeded",
        """
        import random
        random.seed(42)
        print(random.randint(1, 1000), random.choice("abcdef"))
        """,
        "{seeded}",
    ),
    (
        "module-string-and-textwrap",
        """
        import string
        import textwrap
        print(string.ascii_lowercase[:5], string.capwords("hello bot world"))
        print(string.Template("$who likes $what").substitute(who="ann", what="tea"))
        print(textwrap.fill("the quick brown fox jumps", width=10))
        print(textwrap.shorten("one two three four", width=12))
        """,
        "abcde Hello Bot World\nann likes tea\nthe quick\nbrown fox\njumps\none [...]\n",
    ),
    (
        "module-html-and-urllib-parse",
        """
        import html
        import urllib.parse
        from urllib.parse import quote
        print(html.escape("<b>&</b>"), html.unescape("&lt;"))
        print(quote("a b/c"), urllib.parse.urlencode({"q": "x y", "n": 1}))
        print(urllib.parse.urlparse("https://t.me/bot?start=1").netloc)
        print(urllib.parse.parse_qs("a=1&a=2&b=3"))
        """,
        "&lt;b&gt;&amp;&lt;/b&gt; <\na%20b/c q=x+y&n=1\nt.me\n{'a': ['1', '2'], 'b': ['3']}\n",
    ),
    (
        "module-base64-hashlib-hmac",
        """
        import base64
        import hashlib
        import hmac
        print(base64.b64encode(b"bot").decode(), base64.b64decode("Ym90"))
        print(hashlib.sha256(b"abc").hexdigest()[:16], hashlib.md5(b"").hexdigest()[:8])
        sig = hmac.new(b"key", b"msg", "sha256").hexdigest()
        print(sig[:16], hmac.compare_digest(sig, sig))
        """,
        "Ym90 b'bot'\nba7816bf8f01cfea d41d8cd9\n2d93cbc1be167bcb True\n",
    ),
    (
        "module-uuid",
        """
        import uuid
        print(uuid.uuid5(uuid.NAMESPACE_DNS, "example.com"))
        u = uuid.uuid4()
        print(u.version, len(str(u)), uuid.UUID(str(u)) == u)
        """,
        "cfbff0d1-9375-5685-968c-48ce8b15ae17\n4 36 True\n",
    ),
    (
        "sorted-dict-items-and-builtins",
        """
        d = {"b": 2, "a": 1, "c": 3}
        print(sorted(d.items()), sorted(d, reverse=True))
        print(sum(d.values()), min(d), list(zip("ab", [1, 2])), list(enumerate("xy", 1)))
        print(any([0, 1]), all([]), abs(-2), divmod(7, 2), list(reversed([1, 2])))
        """,
        "[('a', 1), ('b', 2), ('c', 3)] ['c', 'b', 'a']\n"
        "6 a [('a', 1), ('b', 2)] [(1, 'x'), (2, 'y')]\n"
        "True True 2 (3, 1) [2, 1]\n",
    ),
]


def _expected(output: str) -> str:
    seeded = random.Random(42)  # the generator the script seeds
    return output.replace("{seeded}", f"{seeded.randint(1, 1000)} {seeded.choice('abcdef')}\n")


@pytest.mark.parametrize(
    ("script", "expected"),
    [(row[1], _expected(row[2])) for row in CONTROLS],
    ids=[row[0] for row in CONTROLS],
)
async def test_ordinary_script_runs_with_exact_output(run, script, expected):
    """The script runs to the end (status OK) and prints exactly the expected text."""
    result = await run(script)
    assert result.status is Status.OK, result.describe()
    assert result.output == expected


def test_control_corpus_is_large_and_ids_are_unique():
    """The corpus keeps at least 25 rows, each with its own id."""
    ids = [row[0] for row in CONTROLS]
    assert len(ids) >= 25
    assert len(set(ids)) == len(ids)


async def test_top_level_return_ends_the_script_with_a_value(run):
    """``return`` at module level stops the script and hands its JSON value to the host."""
    result = await run(
        """
        print("before")
        if True:
            return {"stop": True, "n": [1, 2]}
        print("after")
        """
    )
    assert result.status is Status.OK
    assert result.output == "before\n"
    assert result.returned is True
    assert result.value == {"stop": True, "n": [1, 2]}


async def test_script_without_return_reports_not_returned(run):
    """A script that runs off its end reports ``returned`` False and no value."""
    result = await run("x = 1")
    assert result.status is Status.OK
    assert result.returned is False
    assert result.value is None


async def test_refused_import_names_the_allowed_modules(run):
    """``import os`` fails with an ImportError whose message lists every allowed module."""
    result = await run("import os")
    assert result.status is Status.SCRIPT_ERROR
    assert result.error is not None
    assert result.error.type == "ImportError"
    assert result.error.line == 1
    assert "'os'" in result.error.message
    for name in ALLOWED_MODULES:
        assert name in result.error.message


async def test_script_error_reports_author_line_and_only_script_frames(run):
    """A traceback names the author's lines and functions only, with their source text."""
    result = await run(
        """
        import json

        def parse(text):
            return json.loads(text)

        def handle(text):
            value = parse(text)
            return value

        handle("{not json")
        """
    )
    assert result.status is Status.SCRIPT_ERROR
    error = result.error
    assert error is not None
    assert error.type == "JSONDecodeError"
    assert error.line == 5  # the run fixture keeps the leading blank line: line 1 is empty
    assert [(f.line, f.function) for f in error.traceback] == [
        (11, "<module>"),
        (8, "handle"),
        (5, "parse"),
    ]
    assert [f.text for f in error.traceback] == [
        'handle("{not json")',
        "value = parse(text)",
        "return json.loads(text)",
    ]


async def test_globals_passed_in_are_visible(run):
    """JSON values passed as ``globals=`` are plain global names in the script."""
    result = await run(
        "print(user['name'], count + 1, flags, missing)",
        globals={"user": {"name": "ann"}, "count": 2, "flags": [True, None], "missing": None},
    )
    assert result.status is Status.OK
    assert result.output == "ann 3 [True, None] None\n"


async def test_globals_are_copies_per_run(run):
    """Mutating a passed-in global inside the script leaves the host's value unchanged."""
    shared = {"items": [1]}
    result = await run("state['items'].append(2)\nprint(state)", globals={"state": shared})
    assert result.status is Status.OK
    assert result.output == "{'items': [1, 2]}\n"
    assert shared == {"items": [1]}


async def test_wildcard_capability_namespace_exchanges_json_copies(run):
    """``Api.*`` serves any method; arguments and results cross as copies, never shared."""
    host_value = {"ok": True, "result": {"id": 7, "tags": ["a"]}}
    pristine = copy.deepcopy(host_value)
    received: list[CallRequest] = []

    async def api(request: CallRequest) -> object:
        received.append(request)
        if request.args:
            request.args[0].append("host-side")  # type: ignore[union-attr]
        return host_value

    result = await run(
        """
        payload = ["from-script"]
        reply = Api.anyName(payload, chat_id=5)
        reply["result"]["tags"].append("script-side")
        reply["ok"] = False
        other = Api.sendMessage(text="hi")
        print(payload, reply["ok"], other["result"]["tags"])
        """,
        capabilities={"Api.*": api},
    )
    assert result.status is Status.OK, result.describe()
    assert result.output == "['from-script'] False ['a']\n"
    assert host_value == pristine
    assert [(r.name, r.method) for r in received] == [
        ("Api.anyName", "anyName"),
        ("Api.sendMessage", "sendMessage"),
    ]
    assert received[0].kwargs == {"chat_id": 5}
    assert [c.name for c in result.calls] == ["Api.anyName", "Api.sendMessage"]


async def test_capability_error_is_catchable_with_its_data(run):
    """A handler's ``CapabilityError(kind="ApiError")`` is caught in the script as ApiError."""

    async def api(request: CallRequest) -> object:
        raise CapabilityError("Bad Request: chat not found", kind="ApiError", data={"code": 400})

    result = await run(
        """
        try:
            Api.sendMessage(chat_id=1, text="hi")
        except ApiError as e:
            print("caught", e.code, e.message, e.kind, isinstance(e, Exception))
        """,
        capabilities={"Api.*": api},
        exceptions=["ApiError"],
    )
    assert result.status is Status.OK, result.describe()
    assert result.output == "caught 400 Bad Request: chat not found ApiError True\n"
    assert len(result.calls) == 1
    assert result.calls[0].ok is False
    assert result.calls[0].error == "Bad Request: chat not found"


async def test_uncaught_capability_error_is_a_script_error_named_by_kind(run):
    """An ApiError the script does not catch ends the run as a script error of that type."""

    async def api(request: CallRequest) -> object:
        raise CapabilityError("Forbidden", kind="ApiError", data={"code": 403})

    result = await run(
        "x = 1\nApi.kick(user_id=2)", capabilities={"Api.*": api}, exceptions=["ApiError"]
    )
    assert result.status is Status.SCRIPT_ERROR
    assert result.error is not None
    assert (result.error.type, result.error.message, result.error.line) == (
        "ApiError",
        "Forbidden",
        2,
    )
