"""Ctrl-C while `charrnn` starts (imports the CLI, parses, loads the data) or trains: exit 130, no traceback."""

import signal
import subprocess
import sys
import time
from pathlib import Path

from .conftest import ROOT
from .helpers import write_config

# seconds after charrnn.launch is imported: the CLI's imports, the verb's start, training
MOMENTS = [0.05 + 0.95 * i / 9 for i in range(10)]
# the entry function as the console script calls it. Before it, the interpreter's own start is out of reach
# (a signal there is Python's traceback): so the moments count from a marker printed just before the import
LAUNCH = "import sys; sys.stderr.write('launching\\n'); sys.stderr.flush(); from charrnn.launch import main; main()"


def test_ctrl_c_at_any_moment_exits_130_without_a_traceback(tmp_path):
    config = write_config(tmp_path, train={"steps": 100_000, "max_seconds": 20, "log_every": 1000})
    for i, delay in enumerate(MOMENTS):
        out = tmp_path / f"run{i}"
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "train", str(config), "--set", f"train.out_dir={out}"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # as a terminal starts it: pytest run as a background job hands its children an ignored SIGINT
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            assert proc.stderr is not None and proc.stderr.readline() == b"launching\n"
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)
            if i % 3 == 2:  # and again soon after, as an impatient user: still no traceback while it stops
                time.sleep(0.02)
                proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
        text = err.decode()
        assert proc.returncode == 130 and "Traceback" not in text, (delay, proc.returncode, text)


def test_the_console_script_and_python_m_go_through_the_launcher(tmp_path):
    assert 'charrnn = "charrnn.launch:main"' in (ROOT / "pyproject.toml").read_text().splitlines()
    assert "from .launch import main" in (ROOT / "charrnn" / "__main__.py").read_text()
    done = subprocess.run([sys.executable, "-m", "charrnn", "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("charrnn "), done.stderr
    # the launcher imports nothing heavy before its handler is in place
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, charrnn.launch; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        cwd=Path(tmp_path),
    ).stdout.split()
    assert not {"typer", "rich", "numpy", "charrnn.cli"} & set(imported)
