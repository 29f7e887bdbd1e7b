"""Module facades: only the listed names, nothing a run can change for the next one."""

from __future__ import annotations

import pytest

from sandbox import ALLOWED_MODULES, Status, WorkerPool
from sandbox.modules import load_facades


def test_every_facade_holds_exactly_its_listed_names():
    """A facade offers the allowed names and nothing else (no module internals)."""
    facades = load_facades()
    for name, members in ALLOWED_MODULES.items():
        if name == "random":
            continue
        public = {k for k in vars(facades[name]) if not k.startswith("_")}
        assert public == set(members), name


def test_no_facade_holds_a_mutable_constant():
    """Sets, lists and dicts in modules are handed over as immutable copies."""
    for facade in load_facades().values():
        for key, value in vars(facade).items():
            if not key.startswith("_"):
                assert not isinstance(value, set | list | dict | bytearray), key


async def test_a_run_cannot_change_a_module_constant_for_the_next_run():
    """hashlib.algorithms_guaranteed cannot be grown by one run and seen by another."""
    async with WorkerPool(1) as pool:
        first = await pool.run("import hashlib\nhashlib.algorithms_guaranteed.add('leak')")
        assert first.status is Status.SCRIPT_ERROR
        second = await pool.run("import hashlib\nprint('leak' in hashlib.algorithms_guaranteed)")
        assert second.output == "False\n"


@pytest.mark.parametrize("module", sorted(ALLOWED_MODULES), ids=sorted(ALLOWED_MODULES))
async def test_every_allowed_module_imports_in_a_script(pool, module):
    """Each allowed module imports, as `import x` works for dotted names too."""
    result = await pool.run(f"import {module}\nprint('ok')")
    assert result.output == "ok\n", result.describe()
