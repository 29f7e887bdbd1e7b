"""A bot folder: ``bot.yaml``, one ``*.py`` command file per command, and shared modules in
``lib/*.py`` (imported by commands as ``lib.<name>``); folders of bots.

:func:`check_bot` lists every problem of a folder; :func:`check_folders` does it for several
folders, located by path, and adds the ids two folders share (``python run.py check`` and
``serve`` both use it); :func:`load_bot` returns the :class:`BotDefinition` or raises
:class:`BotFolderError` with all of them. Reading the files is the only I/O; parsing and checking
are pure functions of their text (``bot.yaml`` in :mod:`runtime.bots.config`). Scripts are
compiled here only to report their errors; the pool compiles them again, cached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from runtime.bots.command import Command, has_code, parse_command_file, split_header, suggest
from runtime.bots.config import CONFIG_FILE, BotConfig, parse_config
from runtime.bots.dispatch import CommandTable, NameOwners, find
from runtime.errors import BotFolderError, ConfigError, Problem
from sandbox import compile_script
from sandbox.limits import KIB

MAX_CONFIG_BYTES: Final = 64 * KIB
MAX_COMMAND_FILE_BYTES: Final = 512 * KIB
LIB_FOLDER: Final = "lib"
"""The folder of a bot's shared modules: ``lib/quiz.py`` is ``lib.quiz`` in its commands."""


@dataclass(frozen=True, slots=True)
class LibModule:
    """One shared module of a bot: ``lib.quiz`` from ``lib/quiz.py``."""

    name: str
    path: str
    source: str


@dataclass(frozen=True, slots=True)
class BotDefinition:
    """A loaded bot: its configuration, its command table, the folder it came from, and its
    shared modules (``lib/``)."""

    config: BotConfig
    commands: CommandTable
    folder: Path
    modules: tuple[LibModule, ...] = ()


def load_bot(folder: Path) -> BotDefinition:
    """Load a bot folder; raise :class:`BotFolderError` listing every problem."""
    if not folder.is_dir():
        raise BotFolderError([Problem(f"{folder} is not a directory")])
    files = read_files(folder)
    config, commands, problems = inspect_files(files, folder.name)
    errors = [problem for problem in problems if not problem.warning]
    if errors or config is None:
        raise BotFolderError(errors or [Problem("the bot folder cannot be loaded")])
    return BotDefinition(config, CommandTable.build(commands), folder, lib_modules(files))


def check_bot(folder: Path) -> list[Problem]:
    """Return every problem of a bot folder (it loads when none is an error; warnings may be)."""
    return _inspect(folder)[2]


def check_folders(folders: Sequence[Path]) -> list[Problem]:
    """Every problem of several bot folders, files named by path, and every id used twice."""
    problems: list[Problem] = []
    owners: dict[str, Path] = {}
    for folder in folders:
        config, _, found = _inspect(folder)
        problems.extend(_in_folder(problem, folder) for problem in found)
        if config is None:
            continue
        first = owners.setdefault(config.id, folder)
        if first != folder:
            problems.append(
                Problem(
                    f"bot id {config.id!r} is already used by {first}; "
                    "each bot needs an id of its own (set id in bot.yaml)",
                    str(folder / CONFIG_FILE),
                )
            )
    return problems


def is_bot_folder(folder: Path) -> bool:
    """True if ``folder`` holds a ``bot.yaml``."""
    return (folder / CONFIG_FILE).is_file()


def bot_folders(bots_dir: Path | None, demo_dir: Path | None) -> list[Path]:
    """Return the demo folder (if any) and every sub-folder of ``bots_dir`` with a bot.yaml."""
    folders = [demo_dir] if demo_dir is not None else []
    if bots_dir is not None:
        if not bots_dir.is_dir():
            raise ConfigError(f"BOTBOX_BOTS_DIR {bots_dir} is not a folder")
        folders += sorted(path for path in bots_dir.iterdir() if is_bot_folder(path))
    return folders


def read_config(folder: Path) -> BotConfig | None:
    """The folder's ``bot.yaml`` parsed, or ``None`` if it cannot be (see :func:`check_bot`)."""
    problems: list[Problem] = []
    text = _read_text(folder / CONFIG_FILE, CONFIG_FILE, MAX_CONFIG_BYTES, problems)
    return None if text is None else parse_config(text, folder.name)[0]


def _in_folder(problem: Problem, folder: Path) -> Problem:
    """The problem with its file named by its path (``FOLDER/bot.yaml``), not inside the folder."""
    if problem.file is None:
        return problem
    return Problem(problem.message, str(folder / problem.file), problem.line, problem.warning)


BotFiles = Mapping[str, str | Problem]
"""A bot's files by name (``bot.yaml`` and its command files): text, or why it is unreadable."""


def is_bot_file(name: str) -> bool:
    """True for the files a bot is made of: ``bot.yaml``, ``*.py`` commands and ``lib/*.py``
    modules, none ``_private`` or hidden."""
    if name == CONFIG_FILE:
        return True
    folder, slash, base = name.rpartition("/")
    if slash and folder != LIB_FOLDER:
        return False
    return (
        base.endswith(".py")
        and not base.startswith(("_", "."))
        and "\\" not in base
        and "\x00" not in base
    )


def lib_module_name(name: str) -> str | None:
    """``lib.quiz`` for the file ``lib/quiz.py``; None for any other name."""
    folder, slash, base = name.rpartition("/")
    if folder != LIB_FOLDER or not slash or not is_bot_file(name):
        return None
    return f"{LIB_FOLDER}.{base.removesuffix('.py')}"


def lib_modules(files: BotFiles) -> tuple[LibModule, ...]:
    """The readable shared modules among a bot's files, by name."""
    found: list[LibModule] = []
    for name in sorted(files):
        module, text = lib_module_name(name), files[name]
        if module is not None and type(text) is str:
            found.append(LibModule(module, name, text))
    return tuple(found)


def read_files(folder: Path) -> dict[str, str | Problem]:
    """Read a bot folder's files (``bot.yaml`` if present, every command file) as text.

    An unreadable file (too large, not UTF-8) is kept as the :class:`Problem` saying why, so a
    check reports it in its place; a missing ``bot.yaml`` is left out (:func:`inspect_files`
    reports it).
    """
    files: dict[str, str | Problem] = {}
    if (folder / CONFIG_FILE).exists():
        files[CONFIG_FILE] = _read_one(folder / CONFIG_FILE, CONFIG_FILE, MAX_CONFIG_BYTES)
    if folder.is_dir():
        for path in _command_files(folder):
            files[path.name] = _read_one(path, path.name, MAX_COMMAND_FILE_BYTES)
        lib = folder / LIB_FOLDER
        if lib.is_dir():
            for path in sorted(lib.iterdir()):
                if path.name.startswith(("_", ".")):
                    continue
                relative = f"{LIB_FOLDER}/{path.name}"
                if path.is_dir():
                    files[relative + "/"] = Problem(NESTED_LIB, relative)
                elif path.suffix == ".py" and path.is_file():
                    files[relative] = _read_one(path, relative, MAX_COMMAND_FILE_BYTES)
    return files


NESTED_LIB: Final = "lib/ holds plain modules (lib/NAME.py); folders inside it are not supported"


def inspect_files(
    files: BotFiles, folder_name: str
) -> tuple[BotConfig | None, list[Command], list[Problem]]:
    """Check a bot's files (pure): its config and every command file, problems by file and line.

    ``folder_name`` is the id the bot gets when ``bot.yaml`` names none. Names that are not
    bot files (see :func:`is_bot_file`) are problems too.
    """
    problems: list[Problem] = []
    config: BotConfig | None = None
    config_text = files.get(CONFIG_FILE)
    if config_text is None:
        problems.append(Problem("the file is missing", CONFIG_FILE))
    elif isinstance(config_text, Problem):
        problems.append(config_text)
    else:
        config, config_problems = _checked_config(config_text, folder_name)
        problems.extend(_by_line(config_problems))
    commands: list[Command] = []
    owners: NameOwners[str] = NameOwners()
    for relative in sorted(name for name in files if name != CONFIG_FILE):
        text = files[relative]
        unusable = _unusable(relative, text)
        if unusable is not None or isinstance(text, Problem):
            problems.append(unusable or Problem("the file cannot be read", relative))
            continue
        module = lib_module_name(relative)
        if module is not None:
            problems.extend(_by_line(_module_problems(module, text, relative)))
            continue
        command, file_problems = parse_command_file(text, relative)
        if command is None:
            header = split_header(text)
            file_problems.extend(_compile_problems(header.source, relative, header.first_line))
        else:
            for word in (command.name, *command.aliases):
                other = owners.claim(word, relative)
                if other is not None:
                    file_problems.append(Problem(f'"{word}" is already used by {other}', relative))
            file_problems.extend(_compile_problems(command.source, relative, command.first_line))
            commands.append(command)
        problems.extend(_by_line(file_problems))
    if config is not None and config.schedules:
        problems.extend(_schedule_problems(config, commands))
    return config, commands, problems


def _unusable(relative: str, text: str | Problem) -> Problem | None:
    """Why a file cannot be checked as a command or a module (None when it can)."""
    if isinstance(text, Problem) and text.message == NESTED_LIB:
        return text
    if not is_bot_file(relative):
        return Problem(
            "not a bot file (a bot is bot.yaml, *.py command files and lib/*.py modules)",
            relative,
        )
    if isinstance(text, Problem):
        return text
    if len(text.encode("utf-8", "surrogatepass")) > MAX_COMMAND_FILE_BYTES:
        return Problem(f"the file is larger than {MAX_COMMAND_FILE_BYTES} bytes", relative)
    return None


def _schedule_problems(config: BotConfig, commands: list[Command]) -> list[Problem]:
    """A ``schedules:`` entry naming a command the bot does not have, at the entry's line."""
    table = CommandTable.build(commands)
    names = sorted(command.name for command in commands)
    return [
        Problem(
            f"schedule {schedule.name!r} runs command {schedule.command!r}, which the bot does "
            f"not have{suggest(schedule.command, names)}",
            CONFIG_FILE,
            schedule.line,
        )
        for schedule in config.schedules
        if find(table, schedule.command) is None
    ]


def _checked_config(text: str, folder_name: str) -> tuple[BotConfig | None, list[Problem]]:
    """Parse ``bot.yaml`` text, refusing one past the size limit."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
        return None, [Problem(f"the file is larger than {MAX_CONFIG_BYTES} bytes", CONFIG_FILE)]
    return parse_config(text, folder_name)


def _inspect(folder: Path) -> tuple[BotConfig | None, list[Command], list[Problem]]:
    """Read and check a whole folder: its config and every command file."""
    if not folder.is_dir():
        return None, [], [Problem(f"{folder} is not a directory")]
    return inspect_files(read_files(folder), folder.name)


def _read_one(path: Path, relative: str, limit: int) -> str | Problem:
    """A file's text, or the problem that stops it being read."""
    problems: list[Problem] = []
    text = _read_text(path, relative, limit, problems)
    return problems[0] if text is None else text


def _by_line(problems: list[Problem]) -> list[Problem]:
    """One file's problems in reading order; whole-file problems first."""
    return sorted(problems, key=lambda problem: problem.line or 0)


def _command_files(folder: Path) -> list[Path]:
    """The ``*.py`` files directly in ``folder``, skipping ``_private`` and ``.hidden`` ones."""
    return sorted(
        path
        for path in folder.iterdir()
        if path.suffix == ".py" and not path.name.startswith(("_", ".")) and path.is_file()
    )


def _module_problems(module: str, source: str, relative: str) -> list[Problem]:
    """A shared module's problems: a name scripts could not import, its compile errors."""
    leaf = relative.rpartition("/")[2].removesuffix(".py")
    if not leaf.isidentifier() or not module.isascii():
        return [
            Problem(
                f"{relative} cannot be imported: a module's name must be a Python identifier "
                "(ASCII letters, digits and _, not starting with a digit)",
                relative,
            )
        ]
    return _compile_problems(source, relative, 1)


def _compile_problems(source: str, relative: str, first_line: int) -> list[Problem]:
    """Compile a script under the sandbox policy and return its errors as problems."""
    if not has_code(source):
        return []
    script = compile_script(source, filename=relative, first_line=first_line)
    return [
        Problem(f"{issue.kind}: {issue.message}", relative, issue.line) for issue in script.issues
    ]


def _read_text(path: Path, relative: str, limit: int, problems: list[Problem]) -> str | None:
    """Read a UTF-8 file of at most ``limit`` bytes, or record why it cannot be read."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        problems.append(Problem("the file is missing", relative))
        return None
    except OSError as exc:
        problems.append(Problem(f"cannot read the file: {exc.strerror or exc}", relative))
        return None
    if len(data) > limit:
        problems.append(Problem(f"the file is larger than {limit} bytes", relative))
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problems.append(Problem(f"the file is not UTF-8 text (byte {exc.start})", relative, line))
        return None
    return text.removeprefix("\ufeff")
