"""The docs tell the truth: every command README.md and docs/*.md show runs as shown, and the generated
references are those the code makes today (in the spirit of sqlite-utils' tests/test_docs.py).

Each line of a ```bash block runs with `bash -c`, exactly as written, in a copy of the repository (with
Tiny Shakespeare in its data/, where `charrnn data get tinyshakespeare` finds it), in the order the
README and then docs/*.md show them, so that a page may use the runs an earlier one trained. A line
must exit 0 unless its comment says otherwise (`# exits 2`); a line whose comment says to press Ctrl-C
is sent SIGINT once its run is under way. ```python blocks run too. Not run: `pip install` lines
(the suite runs where charrnn is installed already), the test command, which is this suite, and lines
that need a program of an extra that is not installed here (mpiexec comes with `pip install '.[mpi]'`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import typer
from typer.main import get_command

from charrnn.cli import app

from .conftest import ROOT

DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)
NOT_RUN = re.compile(r"^pip install |\bpytest\b")
OPTIONAL = ("mpiexec", "jq")  # programs some machines lack: lines using them run where they are installed


@dataclass
class Block:
    lang: str
    line: int  # of the opening fence
    text: str


@dataclass
class Command:
    where: str  # file:line
    text: str
    exit_code: int  # what the docs say it exits with
    interrupt: bool  # the docs say to press Ctrl-C


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def blocks(path: Path) -> list[Block]:
    text = read(path)
    return [Block(m[1], text.count("\n", 0, m.start()) + 1, m[2]) for m in FENCE.finditer(text)]


def comment(line: str) -> str:
    """What follows the line's shell comment sign, outside quotes."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[i + 1 :]
    return ""


def commands(path: Path, block: Block) -> list[Command]:
    found = []
    for offset, line in enumerate(block.text.replace("\\\n", " ").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        note = comment(line)
        exits = re.search(r"\bexits (\d+)", note)
        found.append(
            Command(
                f"{path.relative_to(ROOT)}:{block.line + offset}",
                line,
                int(exits[1]) if exits else 0,
                "Ctrl-C" in note,
            )
        )
    return found


def workspace(folder: Path, shakespeare: Path) -> Path:
    """A copy of the repository without runs, caches or virtual environments, with the play in data/."""
    junk = shutil.ignore_patterns(".git", "runs", "*.egg-info", "__pycache__", "*venv*", ".*_cache", "build", "dist")
    copy = folder / "charrnn"
    shutil.copytree(ROOT, copy, ignore=junk)
    shutil.copyfile(shakespeare, copy / "data" / "tinyshakespeare.txt")
    return copy


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # this charrnn, this python
    # on a machine busy with other work two BLAS threads wait on each other, many times slower than one
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def run(command: Command, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run one line; returns its exit code and stderr."""
    with open(cwd.parent / "stdout", "w+") as out, open(cwd.parent / "stderr", "w+") as err:
        proc = subprocess.Popen(
            ["bash", "-c", command.text], cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True
        )
        try:
            if command.interrupt:
                # as a person would: once the run holds its directory's lock, wait a moment, press Ctrl-C
                deadline = time.monotonic() + 120
                while proc.poll() is None and not list(cwd.glob("runs/*/lock")) and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(2)
                os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        err.seek(0)
        return proc.returncode, err.read()


def test_the_docs_show_commands_and_the_parser_finds_them():
    readme = [c for b in blocks(ROOT / "README.md") if b.lang == "bash" for c in commands(ROOT / "README.md", b)]
    texts = [c.text for c in readme]
    assert "charrnn train configs/hello.yaml" in texts and "charrnn sample --prime h" in texts
    assert NOT_RUN.search("pip install '.[test]' && python -m pytest -q") and not NOT_RUN.search(texts[1])
    assert comment('echo "a # b" # exits 2') == " exits 2" and comment("jq '.[] # x'") == ""


def test_every_command_in_the_docs_runs_as_shown(shakespeare, tmp_path):
    cwd, env = workspace(tmp_path, shakespeare), environment()
    ran = 0
    for path in DOC_FILES:
        found = blocks(path)
        for i, block in enumerate(found):
            stderr = ""
            if block.lang == "python":
                result = subprocess.run([sys.executable, "-c", block.text], cwd=cwd, env=env, capture_output=True)
                assert result.returncode == 0, f"{path.name}:{block.line}: python block\n{result.stderr.decode()}"
                ran += 1
            if block.lang != "bash":
                continue
            for command in commands(path, block):
                if NOT_RUN.search(command.text) or any(
                    re.search(rf"\b{name}\b", command.text) and not shutil.which(name, path=env["PATH"])
                    for name in OPTIONAL
                ):
                    continue
                code, err = run(command, cwd, env)
                assert code == command.exit_code, f"{command.where}: `{command.text}` exited {code}\n{err[-3000:]}"
                if command.interrupt:
                    assert "checkpoint saved in" in err, f"{command.where}: no checkpoint after Ctrl-C\n{err}"
                stderr += err
                ran += 1
            # error lines a page shows right after its commands are the ones they print
            shown = found[i + 1].text.splitlines() if i + 1 < len(found) and found[i + 1].lang == "text" else []
            if shown and all(line.startswith("Error: ") for line in shown):
                for line in shown:
                    assert line in stderr.splitlines(), f"{path.name}:{found[i + 1].line}: not what it prints: {line}"
    assert ran >= 20  # a parser that finds nothing must not pass


def every_command(command=None, path="charrnn"):
    """(path, click command) for the app, its groups (`charrnn data`) and its verbs (`charrnn data get`)."""
    command = command or get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from every_command(sub, f"{path} {name}")


def verbs() -> list[str]:
    """Every verb as it is typed: the commands that are not groups."""
    return [path for path, command in every_command() if not getattr(command, "commands", None)]


def test_every_verb_is_in_the_cli_reference_and_the_readme_table():
    cli, readme = read(ROOT / "docs" / "cli.md"), read(ROOT / "README.md")
    for path in verbs():
        assert re.search(rf"^##+ `{path}`$", cli, re.M), f"{path} has no section in docs/cli.md"
        anchor = path.replace(" ", "-")
        assert f"| [`{path}`](docs/cli.md#{anchor}) |" in readme, f"{path} has no row in README.md's table of verbs"


def test_the_generated_references_are_current(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "docs" / "generate.py"), "--out", str(tmp_path)], check=True)
    stale = "is stale: run `python docs/generate.py` and commit the result"
    assert read(tmp_path / "config.md") == read(ROOT / "docs" / "config.md"), f"docs/config.md {stale}"
    committed = read(ROOT / "docs" / "cli.md")
    # whichever Typer is installed, it documents the commands there are, with every option and line of help
    sections = re.findall(r"^#+ `(charrnn[^`]*)`$", committed, re.M)
    assert sorted(sections) == sorted(path for path, _ in every_command()), f"docs/cli.md {stale}"
    for path, command in every_command():
        for line in (command.help or "").splitlines():
            line = line.strip().strip("\b")  # \b: click's mark for a paragraph kept as written
            assert line in committed, f"docs/cli.md {stale}: {path}'s help has a line it lacks: {line}"
        for param in command.params:
            names = param.opts if param.param_type_name == "option" else []  # an argument's opts: its name
            for text in [*names, getattr(param, "help", None) or ""]:
                assert text in committed, f"docs/cli.md {stale}: {path} has {text!r}, which it lacks"
    # the layout is Typer's: compare it byte for byte only with the Typer that wrote it
    written_by = re.match(r"<!-- Generated by `python docs/generate.py` with Typer (\S+) ", committed)
    assert written_by, "docs/cli.md does not say which Typer wrote it: run `python docs/generate.py`"
    if written_by[1] == typer.__version__:
        assert read(tmp_path / "cli.md") == committed, f"docs/cli.md {stale}"
