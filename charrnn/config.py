"""Typed run configuration: YAML in, frozen dataclasses out, every key checked.

A config has four sections, each a dataclass with a default for every key. `load_config` reads
the YAML with `yaml.safe_load`, applies `--set section.key=value` overrides, rejects unknown
keys (suggesting the closest), checks types and ranges, and resolves paths:
data.path against the config file's folder (or the current directory, for a --set),
train.out_dir against the current directory, defaulting to runs/<config stem>.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .cells import CELLS
from .errors import ConfigError
from .init import SCHEMES

Check = Callable[[Any], Any]


def _describe(value: Any) -> str:
    """How a rejected value is shown: repr plus a hint for YAML's surprises."""
    if isinstance(value, bool):
        return f"{value!r} (a boolean; YAML reads yes/no/on/off as booleans, quote it for text)"
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return f"{value!r} (a string)"
        spelled = _yaml_number(value)
        if not math.isfinite(number) or spelled is None:
            return f"{value!r} (a string)"
        if spelled != value:
            return f"{value!r} (a string; YAML needs a dot and a signed exponent: write {spelled})"
        return f"{value!r} (a string; write it without quotes)"
    if value is None:
        return "nothing (null)"
    return repr(value)


def _yaml_number(text: str) -> str | None:
    """How to write the number `text` so that YAML reads a number: 1e-3 -> 1.0e-3, 1.0e30 -> 1.0e+30.

    PyYAML follows YAML 1.1: an exponent needs a dot in the mantissa and a sign.
    """
    if not isinstance(_scalar(text), str):
        return text
    mantissa, _, exponent = text.strip().lower().partition("e")
    mantissa += "" if "." in mantissa else ".0"
    exponent = exponent if exponent[:1] in ("+", "-") else f"+{exponent}"
    spelled = f"{mantissa}e{exponent}"
    return spelled if isinstance(_scalar(spelled), float) else None


def _scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _int(lo: int, what: str) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ValueError(f"expected {what}, got {_describe(value)}")
        return value

    return check


def _float(what: str, ok: Callable[[float], bool]) -> Check:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected {what}, got {_describe(value)}")
        if not (math.isfinite(value) and ok(float(value))):
            raise ValueError(f"expected {what}, got {value!r}")
        return float(value)

    return check


def _choice(*choices: str) -> Check:
    def check(value: Any) -> str:
        if value not in choices:
            listed = ", ".join(choices)
            raise ValueError(f"expected one of {listed}, got {_describe(value)}")
        return value

    return check


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {_describe(value)}")
    return value


def _auto_or(check: Check, what: str) -> Check:
    def auto_or(value: Any) -> Any:
        if value == "auto":
            return value
        try:
            return check(value)
        except ValueError:
            raise ValueError(f"expected {what} or auto, got {_describe(value)}") from None

    return auto_or


def _optional(check: Check) -> Check:
    def optional(value: Any) -> Any:
        return None if value is None else check(value)

    return optional


positive_int = _int(1, "a positive integer")
nonnegative_int = _int(0, "an integer >= 0")
positive_float = _float("a positive number", lambda v: v > 0)
nonnegative_float = _float("a number >= 0", lambda v: v >= 0)
unit_fraction = _float("a number in [0, 1)", lambda v: 0 <= v < 1)
decay_factor = _float("a number in (0, 1]", lambda v: 0 < v <= 1)
beta = _float("a number in [0, 1)", lambda v: 0 <= v < 1)


def _key(default: Any, check: Check, doc: str) -> Any:
    """A config key: its default, how a value is checked, and what it is for."""
    return field(default=default, metadata={"check": check, "doc": doc})


@dataclass(frozen=True)
class DataConfig:
    path: str = _key("", _text, "training text; relative to the config file's folder")
    records: str = _key(
        "file",
        _choice("file", "paragraph", "line"),
        "file: whole text is one record; paragraph: split at blank lines; line: one record per line",
    )
    val_fraction: float = _key(0.1, unit_fraction, "last share of the id stream held out for validation")
    encoding: str = _key("utf-8", _text, "text encoding of data.path")
    errors: str = _key("strict", _choice("strict", "replace"), "undecodable bytes: fail, or replace with U+FFFD")


@dataclass(frozen=True)
class ModelConfig:
    cell: str = _key(
        "rnn",
        _choice(*CELLS),
        "recurrent cell: rnn (vanilla tanh), lstm or gru, as torch.nn.RNN, nn.LSTM and nn.GRU",
    )
    hidden_size: int = _key(128, positive_int, "units per layer (H)")
    num_layers: int = _key(2, positive_int, "stacked recurrent layers (L)")
    dropout: float = _key(0.0, unit_fraction, "dropout on each layer's output, as char-rnn's -dropout")
    init: str = _key(
        "torch",
        _choice(*SCHEMES),
        "initial weights: torch (uniform ±1/sqrt(H)), uniform (±0.08, char-rnn), orthogonal or identity W_hht",
    )
    init_scale: float | None = _key(
        None,
        _optional(positive_float),
        "torch/uniform: the bound; orthogonal/identity: W_hht's gain; null: the scheme's default",
    )


@dataclass(frozen=True)
class TrainConfig:
    seq_length: int = _key(50, positive_int, "BPTT window (T): steps unrolled per update")
    batch_size: int = _key(50, positive_int, "parallel tracks over the id stream (B)")
    steps: int | str = _key(
        2000,
        _auto_or(positive_int, "a positive integer"),
        "optimizer updates in the whole run; auto: as many as fit train.max_seconds, measured after warm-up "
        "(docs/guide.md)",
    )
    optimizer: str = _key("adam", _choice("adam", "sgd", "rmsprop", "adagrad"), "update rule")
    learning_rate: float = _key(2.0e-3, positive_float, "step size at step 0")
    momentum: float = _key(0.9, beta, "sgd momentum")
    ema: float = _key(
        0.0,
        unit_fraction,
        "keep an average of the weights, ema_w = d ema_w + (1 - d) w after update t (from 0), "
        "d = min(ema, (1 + t) / (10 + t)); validation and the other verbs use it; 0: off",
    )
    lr_decay: float = _key(1.0, decay_factor, "multiply the learning rate by this every lr_decay_every steps")
    lr_decay_every: int = _key(1000, positive_int, "steps between learning-rate decays")
    lr_schedule: str = _key(
        "step",
        _choice("step", "exponential", "cosine", "plateau"),
        "step/exponential: lr_decay per lr_decay_every steps; cosine: down to lr_min at the last of train.steps; "
        "plateau: times lr_decay after lr_patience validations without a new best",
    )
    lr_min: float = _key(0.0, nonnegative_float, "floor of every schedule; where cosine ends")
    lr_patience: int = _key(2, positive_int, "plateau: validations without a new best before the rate drops")
    warmup_steps: int = _key(0, nonnegative_int, "ramp the learning rate up linearly over the first steps")
    early_stop_patience: int = _key(0, nonnegative_int, "stop after this many validations without a new best; 0: never")
    max_seconds: float = _key(
        0.0, nonnegative_float, "wall-clock budget of one invocation's loop; 0: none; train.steps: auto fits to it"
    )
    grad_clip: float = _key(5.0, nonnegative_float, "global gradient-norm limit; 0 turns clipping off")
    seed: int = _key(0, nonnegative_int, "seeds initialisation and dropout: same seed and workers, same run")
    workers: int | str = _key(
        "auto",
        _auto_or(positive_int, "a positive integer"),
        "processes the batch_size tracks are split over; auto: one per core unless the model is too small to "
        "gain (docs/parallel.md); under mpiexec, one per rank",
    )
    threads: int | str = _key(
        "auto", _auto_or(positive_int, "a positive integer"), "BLAS threads of each worker; auto: cores / workers"
    )
    eval_every: int = _key(100, positive_int, "steps between validation losses")
    checkpoint_every: int = _key(500, positive_int, "steps between checkpoints (one is always written at the end)")
    log_every: int = _key(100, positive_int, "steps between progress lines when stderr is not a terminal")
    out_dir: str | None = _key(None, _optional(_text), "run directory; default runs/<config stem>")


@dataclass(frozen=True)
class SampleConfig:
    length: int = _key(500, nonnegative_int, "characters to generate after the prime, at most")
    temperature: float = _key(1.0, nonnegative_float, "softmax temperature; 0 is greedy argmax")
    top_k: int | None = _key(None, _optional(positive_int), "sample only among the k likeliest characters")


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]


def _shown(name: Any) -> str:
    """A name the user wrote, as it goes into a one-line message: as is when printable, else its repr."""
    text = str(name)
    return text if text.isprintable() else repr(text)


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else f" (valid: {', '.join(options)})"


def _build(raw: dict, source: str) -> Config:
    """Check a {section: {key: value}} mapping and turn it into a Config."""
    sections = {}
    for name, cls in SECTIONS.items():
        values = raw.get(name) or {}
        keys = {f.name: f for f in dataclasses.fields(cls)}
        checked = {}
        for key, value in values.items():
            if key not in keys:
                options = [f"{name}.{k}" for k in keys]
                raise ConfigError(
                    f"{source}: {_shown(f'{name}.{key}')}: unknown key{_suggest(f'{name}.{key}', options)}"
                )
            try:
                checked[key] = keys[key].metadata["check"](value)
            except ValueError as err:
                raise ConfigError(f"{source}: {name}.{key}: {err}") from None
        sections[name] = cls(**checked)
    return Config(**sections)


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML config file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}): expected a YAML config file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections ({', '.join(SECTIONS)}), got {type(raw).__name__}")
    for name, values in raw.items():
        if name not in SECTIONS:
            raise ConfigError(f"{path}: {_shown(name)}: unknown section{_suggest(str(name), list(SECTIONS))}")
        if values is not None and not isinstance(values, dict):
            raise ConfigError(f"{path}: {name}: expected a mapping of keys, got {_describe(values)}")
    return raw


def parse_override(text: str) -> tuple[str, str, Any]:
    """Split `section.key=value` into its parts; the value is read as a YAML scalar.

    >>> parse_override("train.steps=300")
    ('train', 'steps', 300)
    """
    name, eq, value_text = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not eq or not dot or not section or not key:
        raise ConfigError(f"--set {_shown(text)}: expected section.key=value, e.g. --set train.steps=300")
    if section not in SECTIONS:
        raise ConfigError(
            f"--set {_shown(text)}: {_shown(section)}: unknown section{_suggest(section, list(SECTIONS))}"
        )
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError:
        value = value_text
    if isinstance(value, (dict, list)):
        raise ConfigError(f"--set {_shown(text)}: expected a single value, got {_describe(value)}")
    return section, key, value


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read, override, check and resolve a run config.

    Raises ConfigError, whose message names the file, the key, the value and what was expected.
    """
    path = Path(path)
    raw = {name: dict(values or {}) for name, values in _read_yaml(path).items()}
    data_path_from_cwd = False
    for text in overrides:
        section, key, value = parse_override(text)
        _build({section: {key: value}}, f"--set {_shown(text)}")
        raw.setdefault(section, {})[key] = value
        data_path_from_cwd = data_path_from_cwd or (section, key) == ("data", "path")
    config = _build(raw, str(path))
    if config.train.steps == "auto" and not config.train.max_seconds:
        raise ConfigError(
            f"{path}: train.steps: auto needs train.max_seconds > 0 (the budget the schedule is fitted to); "
            "set it, or give a number of steps"
        )
    if not config.data.path:
        raise ConfigError(f"{path}: data.path: expected the path of a training text, got nothing")
    base = Path.cwd() if data_path_from_cwd else path.resolve().parent
    data_path = (base / Path(config.data.path).expanduser()).resolve()
    out_dir = Path(config.train.out_dir or Path("runs") / path.stem).expanduser().resolve()
    return dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, path=str(data_path)),
        train=dataclasses.replace(config.train, out_dir=str(out_dir)),
    )


def config_to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def config_from_dict(raw: Any, source: str) -> Config:
    """Rebuild a saved (already resolved) config, checking it as strictly as a file."""
    if not isinstance(raw, dict) or any(k not in SECTIONS or not isinstance(v, dict) for k, v in raw.items()):
        raise ConfigError(f"{source}: config: expected a mapping of sections ({', '.join(SECTIONS)})")
    return _build(raw, source)


def dump_config(config: Config) -> str:
    """The resolved config as YAML, as saved beside a run's checkpoints."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False, allow_unicode=True)
