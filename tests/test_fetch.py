"""`charrnn data get` against a local HTTP server on 127.0.0.1: a good copy, a wrong one, and no server."""

import functools
import hashlib
import http.server
import shutil
import socket
import threading

import pytest
from typer.testing import CliRunner

from charrnn.cli import app
from charrnn.datasets import DATASETS

runner = CliRunner()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/www over HTTP on a free port of 127.0.0.1; yields its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", www
    httpd.shutdown()
    httpd.server_close()


def get(*args):
    return runner.invoke(app, ["data", "get", "tinyshakespeare", *map(str, args)], catch_exceptions=False)


def test_download_verifies_checksum_and_writes_the_file(server, tmp_path, shakespeare):
    base, www = server
    shutil.copy(shakespeare, www / "input.txt")
    to = tmp_path / "data"
    result = get("--to", to, "--url", f"{base}/input.txt")
    assert result.exit_code == 0, result.stderr
    dest = to / "tinyshakespeare.txt"
    assert result.stdout == f"{dest}\n" and result.stderr == f"downloaded {dest}\n"
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == DATASETS["tinyshakespeare"].sha256
    assert sorted(p.name for p in to.iterdir()) == ["tinyshakespeare.txt"]  # no temporary file left
    again = get("--to", to, "--url", f"{base}/missing.txt")  # already there: no download at all
    assert again.exit_code == 0 and again.stderr == f"already there, checksum ok: {dest}\n"


def test_wrong_checksum_writes_nothing(server, tmp_path):
    base, www = server
    (www / "input.txt").write_text("First Citizen:\nnot quite the play\n")
    result = get("--to", tmp_path / "data", "--url", f"{base}/input.txt")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(f"Error: {base}/input.txt: sha256 ") and result.stderr.count("\n") == 1
    assert "nothing written" in result.stderr
    assert not (tmp_path / "data").exists()


def test_unreachable_server_says_where_to_put_the_file(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = get("--to", tmp_path / "data", "--url", f"http://127.0.0.1:{port}/input.txt")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"Error: cannot download http://127.0.0.1:{port}/input.txt (")
    assert f"save it as {tmp_path / 'data' / 'tinyshakespeare.txt'}" in result.stderr
    assert "configs/shakespeare.yaml reads data/tinyshakespeare.txt" in result.stderr
    assert not (tmp_path / "data").exists()


def test_http_error_and_bad_arguments(server, tmp_path):
    base, _ = server
    missing = get("--to", tmp_path, "--url", f"{base}/nope.txt")
    assert missing.exit_code == 1 and "(HTTP 404 " in missing.stderr
    unknown = runner.invoke(app, ["data", "get", "tinystories"])
    assert (
        unknown.exit_code == 2 and unknown.stderr == "Error: tinystories: unknown data set (known: tinyshakespeare)\n"
    )
    bad_url = get("--to", tmp_path, "--url", "ftp://example.invalid/x")
    assert bad_url.exit_code == 2 and bad_url.stderr.startswith("Error: --url: expected an http:// or https://")


def test_a_different_file_in_the_way_is_kept(tmp_path):
    (tmp_path / "tinyshakespeare.txt").write_text("my own notes")
    result = get("--to", tmp_path, "--url", "http://127.0.0.1:9/never-asked")
    assert result.exit_code == 1 and "move it away" in result.stderr
    assert (tmp_path / "tinyshakespeare.txt").read_text() == "my own notes"
