"""Property tests: any text, any config. The vocabulary round-trips; two training steps and a sample either
work or end in one clear error line; nothing half-written is left behind."""

import json
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from charrnn.config import SECTIONS, load_config
from charrnn.data import encode_records, read_text, split_records
from charrnn.errors import ConfigError
from charrnn.vocab import Vocab

from .helpers import assert_clean_run, assert_one_line_error, invoke, snapshot, write_config

# the characters that break naive text handling: line ends, NUL, bidi controls, combining marks,
# emoji with modifiers and flags, a BOM, the last code point, Unicode's own line separators
ODD = st.sampled_from(
    [
        "\r\n",
        "\n",
        "\r",
        "\n\n",
        "\x00",
        "\u200f",
        "\u202e",
        "\u0301",
        "e\u0301",
        "\U0001f44d\U0001f3fd",
        "\U0001f1eb\U0001f1f7",
        "\ufeff",
        "\u0639\u0631\u0628",
        "\t",
        " ",
        "\U0010ffff",
        "\x85",
        "\u2028",
    ]
)
CHARS = st.characters(exclude_categories=("Cs",))  # lone surrogates cannot come out of a decoded file
PIECES = st.one_of(ODD, st.text(CHARS, max_size=6), st.sampled_from(["hello ", "ab" * 20]))
TEXTS = st.lists(PIECES, max_size=40).map("".join)
fuzz = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@settings(fuzz, max_examples=150)
@given(text=TEXTS)
def test_vocabulary_and_records_round_trip_exactly(tmp_path, text):
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "t.txt"
    path.write_bytes(text.encode())
    assert read_text(path) == text  # no newline translation, no BOM stripping
    vocab = Vocab.from_texts([text])
    assert vocab.decode(vocab.encode(text)) == text
    assert Vocab.from_json(json.loads(json.dumps(vocab.to_json()))).chars == vocab.chars
    for mode in ("file", "paragraph", "line"):
        records = split_records(text, mode)
        ids = encode_records(records, vocab)
        assert vocab.decode(ids) == "".join(records)
        assert int((ids == 0).sum()) == int((ids == 1).sum()) == len(records)


@settings(fuzz, max_examples=40)
@given(
    text=st.lists(PIECES, min_size=8, max_size=40).map("".join),
    tail=st.one_of(st.just(b""), st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])),
    records=st.sampled_from(["file", "paragraph", "line"]),
    errors=st.sampled_from(["strict", "replace"]),
    val_fraction=st.sampled_from([0, 0.2, 0.5]),
    hidden=st.integers(1, 6),
    layers=st.integers(1, 2),
    seq=st.integers(1, 6),
    batch=st.integers(1, 4),
    dropout=st.sampled_from([0, 0.5]),
    optimizer=st.sampled_from(["adam", "sgd", "rmsprop", "adagrad"]),
    prime=st.integers(0, 4),
    temperature=st.sampled_from(["0", "0.7", "1e-300"]),
    top_k=st.sampled_from([[], ["-k", "1"], ["-k", "3"]]),
)
def test_two_steps_and_a_sample_work_or_fail_clearly(
    tmp_path,
    monkeypatch,
    text,
    tail,
    records,
    errors,
    val_fraction,
    hidden,
    layers,
    seq,
    batch,
    dropout,
    optimizer,
    prime,
    temperature,
    top_k,
):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    monkeypatch.chdir(folder)
    (folder / "t.txt").write_bytes(text.encode() + tail)
    path = write_config(
        folder,
        text=None,
        data={"records": records, "errors": errors, "val_fraction": val_fraction},
        model={"hidden_size": hidden, "num_layers": layers, "dropout": dropout},
        train={"steps": 2, "seq_length": seq, "batch_size": batch, "optimizer": optimizer},
    )
    before = snapshot(folder)
    trained = invoke("train", path, "-q")
    event(f"train exit {trained.exit_code}")  # pytest --hypothesis-show-statistics: how many really trained
    if trained.exit_code != 0:
        assert trained.exit_code in (1, 2)
        assert_one_line_error(trained.exit_code, trained.stdout, trained.stderr, trained.exit_code)
        assert snapshot(folder) == before
        return
    assert_clean_run(folder / "runs" / "run")
    start = read_text(folder / "t.txt", errors=errors)[:prime]
    sampled = invoke("sample", "--prime", start, "-n", "5", "-t", temperature, *top_k, "--seed", "0")
    event(f"sample exit {sampled.exit_code}")
    if sampled.exit_code == 0:
        assert sampled.stderr == ""
        out = sampled.stdout_bytes.decode()  # .stdout turns \r\n into \n
        assert out.startswith(start) and out.endswith("\n")
    else:  # the prime holds what records drop (a line end in line mode, a blank line in paragraph mode)
        assert_one_line_error(
            sampled.exit_code, sampled.stdout, sampled.stderr, 2, "--prime: characters not in the model's vocabulary"
        )


NAMES = st.one_of(st.sampled_from(list(SECTIONS)), st.text(max_size=6), st.integers(-2, 2), st.none())
KEYS = st.one_of(
    st.sampled_from(
        [
            "path",
            "records",
            "val_fraction",
            "encoding",
            "errors",
            "hidden_size",
            "num_layers",
            "dropout",
            "seq_length",
            "batch_size",
            "steps",
            "optimizer",
            "learning_rate",
            "grad_clip",
            "seed",
            "out_dir",
            "length",
            "temperature",
            "top_k",
        ]
    ),
    st.text(max_size=6),
    st.booleans(),
)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["1e-3", "1.0e3", "0x10", "yes", "~", ".nan", "-.inf", "2020-01-01", "t.txt"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
DOCS = st.dictionaries(NAMES, st.one_of(VALUES, st.dictionaries(KEYS, VALUES, max_size=4)), max_size=4)
OVERRIDES = st.lists(
    st.one_of(st.text(max_size=12), st.builds(lambda s, k, v: f"{s}.{k}={v}", NAMES, KEYS, st.text(max_size=8))),
    max_size=2,
)
RAW = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "!!python/object/apply:os.system ['true']\n",
            "data: &a [*a]\n",
            "? [a, b]\n: 1\n",
            "data:\n\tpath: x\n",
            "--- 1\n--- 2\n",
            "\ufeffdata: {path: t.txt}\n",
        ]
    ),
)


@settings(fuzz, max_examples=300)
@given(doc=st.one_of(DOCS.map(lambda d: yaml.safe_dump(d, allow_unicode=True)), RAW), overrides=OVERRIDES)
def test_any_config_loads_or_is_one_clear_line(tmp_path, doc, overrides):
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "c.yaml"
    path.write_text(doc, encoding="utf-8")
    try:
        load_config(path, overrides)
    except ConfigError as err:
        message = str(err)
        assert message and "\n" not in message and "\r" not in message, message
        assert message.startswith((str(path), "--set")), message


@pytest.mark.parametrize("text", ["", "\n", "a", "\x00" * 3, "\r\n" * 5, "\U0001f44d" * 40])
def test_tiny_texts_fail_clearly_or_train(in_tmp_text, text):
    """Hand-picked edge sizes, every records mode, without hypothesis' shrinking in the way."""
    for records in ("file", "paragraph", "line"):
        folder = Path(tempfile.mkdtemp(dir=in_tmp_text))
        path = write_config(
            folder,
            text=text,
            data={"records": records, "val_fraction": 0},
            train={"steps": 2, "batch_size": 1, "seq_length": 1, "out_dir": str(folder / "run")},
        )
        result = invoke("train", path, "-q")
        if result.exit_code:
            assert_one_line_error(result.exit_code, result.stdout, result.stderr, result.exit_code)
            assert not (folder / "run").exists()
        else:
            assert_clean_run(folder / "run")


@pytest.fixture
def in_tmp_text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path
