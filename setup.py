"""Build step for the wheel: everything else is in pyproject.toml.

The demo bot (``commands/``) is data that is never imported, kept at the top of the repository
where authors look for it. Setuptools can only ship data inside a package, so the wheel's
``build_py`` copies it into ``runtime/demo/``; ``runtime.settings.demo_folder`` looks there
first and falls back to ``commands/`` in a source checkout (editable installs included).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DEMO_SOURCE = Path(__file__).resolve().parent / "commands"


class BuildWithDemo(build_py):
    """``build_py`` that also copies the demo bot into the built ``runtime/demo/``."""

    def run(self) -> None:
        """Build the packages, then add the demo bot as data."""
        super().run()
        target = Path(self.build_lib) / "runtime" / "demo"
        shutil.copytree(
            DEMO_SOURCE, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
        )


setup(cmdclass={"build_py": BuildWithDemo})
