"""A sweep file: the base run config, the search space over its keys, and how to search it; read and checked.

Everything is checked before anything starts, with the run config's own checks: every grid point and
both bounds of every distribution go through `config._build`, and the base config through
`load_config`. Nothing here imports the engines (optuna, dask): a bad file is refused without them.

    config: ../shakespeare-128.yaml        # the base run config, relative to this file
    space:
      model.hidden_size: [128, 256]        # a list: every value (grid), or one of them (random, tpe)
      train.learning_rate: {loguniform: [1.0e-3, 1.0e-2]}
      model.cell,model.num_layers: [[rnn, 1], [lstm, 2]]   # tied keys: each entry sets both
    search: random                         # grid, random or tpe
    samples: 16                            # trials, for random and tpe
    repeats: 2                             # each trial trains twice, with train.seed and train.seed + 1
    pruner: asha                           # none, asha, hyperband or median
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import SECTIONS, Config, _build, _describe, _shown, _suggest, load_config, parse_override
from .errors import ConfigError

SEARCHES = ("grid", "random", "tpe")
PRUNERS = ("none", "asha", "hyperband", "median")
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int")
KEYS = ("config", "space", "search", "samples", "repeats", "pruner", "concurrent", "max_seconds", "out_dir", "seed")
# what --set may change in a sweep: the config and the space are the sweep itself, so they live in the file
SETTABLE = ("search", "samples", "repeats", "pruner", "concurrent", "max_seconds", "out_dir", "seed")
# keys the sweep sets for each trial itself
SET_BY_SWEEP = {
    "train.out_dir": "each trial's run directory is <out_dir>/trials/<name>",
    "train.workers": "each trial trains in one worker process",
    "train.threads": "each trial's BLAS threads are its share of the cores",
}


@dataclass(frozen=True)
class Dimension:
    """One config key of the space: a list of values, or a distribution between two bounds; or tied keys, a
    list of entries that each set all of them."""

    key: str  # dotted, as --set takes it: model.hidden_size; tied: the keys joined by commas
    kind: str  # list, choice, uniform, loguniform, int or tied
    values: tuple = ()  # list and choice: the values; tied: the entries, each a tuple of one value per key
    low: float = 0.0  # uniform, loguniform, int: the bounds, both included
    high: float = 0.0
    step: int | None = None  # int: only every step-th value from low

    @property
    def keys(self) -> tuple[str, ...]:
        """The config keys it sets: model.cell,model.num_layers -> (model.cell, model.num_layers)."""
        return tuple(self.key.split(","))

    def choices(self) -> list:
        """What Optuna picks from: the values; for tied keys each entry's label, as categoricals take no lists."""
        return [entry_label(e) for e in self.values] if self.kind == "tied" else list(self.values)

    def assign(self, param: Any) -> dict[str, Any]:
        """The config values of Optuna's param: {key: param}; tied: the entry whose label it is, key by key."""
        if self.kind != "tied":
            return {self.key: param}
        entry = next((e for e in self.values if entry_label(e) == param), (None,) * len(self.keys))
        return dict(zip(self.keys, entry))

    def ends(self, key: str) -> list:
        """The values one of its keys can take: every listed one, or the two bounds."""
        if self.kind == "tied":
            return [e[self.keys.index(key)] for e in self.values]
        return list(self.values) if self.values else [self.low, self.high]


def entry_label(entry: tuple) -> str:
    """A tied entry as one string, how the study stores it: ('lstm', 2, 128) -> '["lstm", 2, 128]'."""
    return json.dumps(list(entry), default=str)  # a YAML date, refused by every key, still names its entry


@dataclass(frozen=True)
class Sweep:
    path: Path  # the sweep file
    config: Path  # the base run config, resolved
    overrides: tuple[str, ...]  # --set section.key=value for the base config, shared by every trial
    space: tuple[Dimension, ...]
    search: str
    samples: int | None  # random and tpe: how many trials; grid: None (every point)
    repeats: int  # runs of each trial, seeds train.seed + 0 .. repeats - 1; ranked by the mean of their best losses
    pruner: str
    concurrent: int | None  # trials at once; None: the cores divided by each trial's threads
    max_seconds: float  # budget of one invocation of the sweep; 0: none
    out_dir: Path  # resolved
    seed: int
    base: Config  # the base config with its overrides, checked and resolved

    def trials(self) -> int:
        """How many trials the sweep runs in all."""
        return len(grid_points(self)) if self.search == "grid" else int(self.samples or 0)


def space_keys(sweep: Sweep) -> list[str]:
    """Every config key the space sets, tied ones one by one, in the file's order: the tables' columns."""
    return [key for d in sweep.space for key in d.keys]


def grid_params(sweep: Sweep) -> list[dict[str, Any]]:
    """Every combination of the space's lists as Optuna's params, the last key varying fastest.

    [hidden_size: [8, 16], learning_rate: [0.1, 0.01]] -> [{8, 0.1}, {8, 0.01}, {16, 0.1}, {16, 0.01}]
    """
    names = [d.key for d in sweep.space]
    return [dict(zip(names, combo)) for combo in itertools.product(*(d.choices() for d in sweep.space))]


def grid_points(sweep: Sweep) -> list[dict[str, Any]]:
    """Every combination as config values: grid_params with each tied entry spread over its keys."""
    return [values_of(sweep.space, params) for params in grid_params(sweep)]


def values_of(space: tuple[Dimension, ...], params: dict[str, Any]) -> dict[str, Any]:
    """A trial's config values from Optuna's params, one per config key (None for a param it lacks)."""
    values: dict[str, Any] = {}
    for d in space:
        values.update(d.assign(params.get(d.key)))
    return values


def override(key: str, value: Any) -> str:
    """`key=value` as --set reads it back to the same value: 1e-05 -> train.learning_rate=1.0e-05."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).removesuffix("...\n").strip()
    return f"{key}={text}"


def load_sweep(path: str | Path, sets: list[str] | tuple[str, ...] = ()) -> Sweep:
    """Read a sweep file, apply --set (sweep keys as `samples=8`, base config keys as `train.steps=300`), check.

    Raises ConfigError naming the file (or the --set) and the key.
    """
    path = Path(path)
    raw = _read(path)
    sweep_sets, config_sets = _split_sets(sets)
    for key, (value, _) in sweep_sets.items():
        raw[key] = value
    source = {key: f"--set {_shown(text)}" for key, (_, text) in sweep_sets.items()}

    def where(key: str) -> str:
        return source.get(key, f"{path}: {key}")

    unknown = [k for k in raw if k not in KEYS]
    if unknown:
        key = unknown[0]
        raise ConfigError(f"{path}: {_shown(key)}: unknown key{_suggest(str(key), list(KEYS))}")
    if "config" not in raw:
        raise ConfigError(f"{path}: config: missing; expected the base run config's path, relative to this file")
    config_text = _check(where("config"), raw["config"], isinstance(raw["config"], str) and raw["config"], "a path")
    config = (path.resolve().parent / Path(config_text).expanduser()).resolve()
    try:
        base = load_config(config, config_sets)
    except ConfigError as err:
        raise ConfigError(f"{path}: config: {err}") from None

    search = raw.get("search", "grid")
    _check(where("search"), search, search in SEARCHES, f"one of {', '.join(SEARCHES)}")
    pruner = raw.get("pruner", "none")
    _check(where("pruner"), pruner, pruner in PRUNERS, f"one of {', '.join(PRUNERS)}")
    samples = raw.get("samples")
    if search == "grid":
        if samples is not None:
            raise ConfigError(f"{where('samples')}: a grid search runs every point; samples is for random and tpe")
    elif samples is None:
        raise ConfigError(f"{path}: samples: missing; a {search} search needs the number of trials")
    else:
        _check(where("samples"), samples, _is_int(samples) and samples >= 1, "a positive integer")
    repeats = raw.get("repeats", 1)
    _check(where("repeats"), repeats, _is_int(repeats) and repeats >= 1, "a positive integer (runs of each trial)")
    concurrent = raw.get("concurrent")
    _check(
        where("concurrent"),
        concurrent,
        concurrent is None or (_is_int(concurrent) and concurrent >= 1),
        "a positive integer, or nothing for the cores divided by each trial's threads",
    )
    max_seconds = raw.get("max_seconds", 0)
    _check(
        where("max_seconds"),
        max_seconds,
        _is_number(max_seconds) and 0 <= max_seconds < math.inf,
        "a number of seconds >= 0 (0: no budget)",
    )
    seed = raw.get("seed", 0)
    _check(where("seed"), seed, _is_int(seed) and seed >= 0, "an integer >= 0")
    out_dir = raw.get("out_dir") or f"runs/sweep-{path.stem}"
    _check(where("out_dir"), out_dir, isinstance(out_dir, str), "a folder's path")

    space = _space(path, raw.get("space"), search, pruner, config_sets)
    in_space = [d for d in space if "train.steps" in d.keys]
    if any("auto" in d.ends("train.steps") for d in in_space) or (base.train.steps == "auto" and not in_space):
        raise ConfigError(
            f"{path}: train.steps: auto fits each trial's count to its own speed, while the pruners and the "
            "leaderboard compare trials at equal steps; give train.steps a number"
        )
    sweep = Sweep(
        path=path,
        config=config,
        overrides=tuple(config_sets),
        space=space,
        search=search,
        samples=samples if search != "grid" else None,
        repeats=repeats,
        pruner=pruner,
        concurrent=concurrent,
        max_seconds=float(max_seconds),
        out_dir=Path(out_dir).expanduser().resolve(),
        seed=seed,
        base=base,
    )
    _check_trials(sweep)
    return sweep


def _read(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"{path}: no such sweep file")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML sweep file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}): expected a YAML sweep file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    if not isinstance(raw, dict):
        got = "nothing" if raw is None else type(raw).__name__
        raise ConfigError(f"{path}: expected a mapping with config and space, got {got}")
    return dict(raw)


def _split_sets(sets) -> tuple[dict[str, tuple[Any, str]], list[str]]:
    """--set options: `samples=8` changes the sweep, `train.steps=300` the base config of every trial."""
    sweep_sets: dict[str, tuple[Any, str]] = {}
    config_sets = []
    for text in sets:
        name = text.partition("=")[0].strip()
        if "." in name or name in SECTIONS:
            section, key, value = parse_override(text)
            _build({section: {key: value}}, f"--set {_shown(text)}")
            if f"{section}.{key}" in SET_BY_SWEEP:
                raise ConfigError(f"--set {_shown(text)}: the sweep sets it: {SET_BY_SWEEP[f'{section}.{key}']}")
            config_sets.append(text)
        elif name in SETTABLE:
            value_text = text.partition("=")[2]
            if "=" not in text:
                raise ConfigError(f"--set {_shown(text)}: expected key=value, e.g. --set samples=8")
            try:
                value = yaml.safe_load(value_text) if value_text.strip() else None
            except yaml.YAMLError:
                value = value_text
            sweep_sets[name] = (value, text)
        elif name in ("config", "space"):
            raise ConfigError(f"--set {_shown(text)}: the base config and the space are set in the sweep file")
        else:
            options = [*SETTABLE, "section.key"]
            raise ConfigError(f"--set {_shown(text)}: {_shown(name)}: unknown sweep key{_suggest(name, options)}")
    return sweep_sets, config_sets


def _space(path: Path, raw: Any, search: str, pruner: str, config_sets: list[str]) -> tuple[Dimension, ...]:
    if raw is None or raw == {}:
        raise ConfigError(f"{path}: space: empty; expected config keys, each with a list of values or a distribution")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: space: expected a mapping of config keys, got {_describe(raw)}")
    set_keys = {text.partition("=")[0].strip() for text in config_sets}
    seen: set[str] = set()
    dims = []
    for entry_key, spec in raw.items():
        parts = [part.strip() for part in str(entry_key).split(",")]  # tied keys: model.cell,model.num_layers
        for key in parts:
            _check_key(f"{path}: space: {_shown(key)}", key, pruner, set_keys, seen)
            seen.add(key)
        where = f"{path}: space: {_shown(entry_key)}"
        if len(parts) > 1:
            dims.append(_tied(where, parts, spec))
        else:
            section, _, name = parts[0].partition(".")
            dims.append(_dimension(where, section, name, spec, search))
    return tuple(dims)


def _check_key(where: str, key: str, pruner: str, set_keys: set[str], seen: set[str]) -> None:
    """One config key of the space, alone or tied: known, not the sweep's own, not set elsewhere."""
    section, dot, _ = key.partition(".")
    if not dot or section not in SECTIONS:
        raise ConfigError(f"{where}: expected a config key as section.key, e.g. model.hidden_size")
    names = [f"{section}.{f.name}" for f in dataclasses.fields(SECTIONS[section])]
    if key not in names:
        raise ConfigError(f"{where}: unknown key{_suggest(key, names)}")
    if key in SET_BY_SWEEP:
        raise ConfigError(f"{where}: the sweep sets it: {SET_BY_SWEEP[key]}")
    if key == "train.eval_every" and pruner != "none":
        raise ConfigError(f"{where}: the pruner compares trials at the same validation steps; set it in the config")
    if key in set_keys:
        raise ConfigError(f"{where}: also given with --set; the space varies it")
    if key in seen:
        raise ConfigError(f"{where}: appears twice in the space; each key is varied in one place, alone or tied")


def _tied(where: str, keys: list[str], spec: Any) -> Dimension:
    """Tied keys: a list of entries, each a list of one value per key, each value checked as its key's."""
    shape = f"a list of entries, each a list of {len(keys)} values ({', '.join(keys)})"
    if isinstance(spec, dict):
        raise ConfigError(f"{where}: tied keys take {shape}, not a distribution")
    if not isinstance(spec, list) or not spec:
        raise ConfigError(f"{where}: tied keys take {shape}, got {_describe(spec)}")
    for entry in spec:
        if not isinstance(entry, list) or len(entry) != len(keys):
            raise ConfigError(f"{where}: expected each entry a list of {len(keys)} values, got {_describe(entry)}")
        for key, value in zip(keys, entry):
            if isinstance(value, (list, dict)):
                raise ConfigError(f"{where}: {key}: expected single values in each entry, got {_describe(value)}")
            section, _, name = key.partition(".")
            _build({section: {name: value}}, f"{where}: {entry_label(tuple(entry))}")
    if len(set(map(repr, spec))) < len(spec):
        raise ConfigError(f"{where}: an entry appears twice in {spec!r}")
    return Dimension(",".join(keys), "tied", values=tuple(tuple(entry) for entry in spec))


def _dimension(where: str, section: str, name: str, spec: Any, search: str) -> Dimension:
    key = f"{section}.{name}"

    def check(value: Any, what: str = "") -> None:
        try:
            _build({section: {name: value}}, where)
        except ConfigError as err:
            raise ConfigError(str(err).replace(f"{where}: {key}: ", f"{where}: {what}", 1)) from None

    if isinstance(spec, list):
        kind, values = "list", spec
    elif isinstance(spec, dict):
        kinds = [k for k in spec if k in DISTRIBUTIONS]
        extra = [k for k in spec if k not in (*DISTRIBUTIONS, "step")]
        if len(kinds) != 1 or extra:
            odd = extra[0] if extra else None
            hint = f"{_shown(odd)}: unknown{_suggest(str(odd), [*DISTRIBUTIONS, 'step'])}; " if odd else ""
            raise ConfigError(f"{where}: {hint}expected a list of values or one of {', '.join(DISTRIBUTIONS)}")
        kind = kinds[0]
        if "step" in spec and kind != "int":
            raise ConfigError(f"{where}: step: only an int distribution takes a step")
        values = spec[kind]
    else:
        raise ConfigError(
            f"{where}: expected a list of values or a distribution ({', '.join(DISTRIBUTIONS)}), got {_describe(spec)}"
        )
    if kind in ("list", "choice"):
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: {kind + ': ' if kind == 'choice' else ''}expected a non-empty list of values")
        for value in values:
            if isinstance(value, (list, dict)):
                raise ConfigError(f"{where}: expected single values in the list, got {_describe(value)}")
            check(value)
        if len(set(map(repr, values))) < len(values):
            raise ConfigError(f"{where}: a value appears twice in {values!r}")
        return Dimension(key, kind, values=tuple(values))
    if search == "grid":
        raise ConfigError(
            f"{where}: a grid search needs a list of values, not a {kind} distribution; use search: random or tpe"
        )
    if not (isinstance(values, list) and len(values) == 2 and all(_is_number(v) for v in values)):
        raise ConfigError(f"{where}: {kind}: expected [low, high], two numbers, got {_describe(values)}")
    low, high = values
    if not low < high:
        raise ConfigError(f"{where}: {kind}: expected low < high, got [{low!r}, {high!r}]")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: loguniform: expected low > 0 (it draws log(value) uniformly), got {low!r}")
    step = spec.get("step") if isinstance(spec, dict) else None
    if kind == "int":
        if not (_is_int(low) and _is_int(high)):
            raise ConfigError(f"{where}: int: expected [low, high], two integers, got [{low!r}, {high!r}]")
        if step is not None and not (_is_int(step) and step >= 1 and (high - low) % step == 0):
            raise ConfigError(f"{where}: step: expected a positive integer that divides high - low, got {step!r}")
        check(low, "int low: ")
        check(high, "int high: ")
    else:
        # the distribution draws floats: the key must take them (an int key needs int)
        check(float(low), f"{kind} low: ")
        check(float(high), f"{kind} high: ")
    return Dimension(key, kind, low=low, high=high, step=step)


def _check_trials(sweep: Sweep) -> None:
    """Each grid point as a whole config; the pruners and the ranking need validation losses."""
    if sweep.search == "grid":
        for point in grid_points(sweep):
            try:
                load_config(sweep.config, [*sweep.overrides, *(override(k, v) for k, v in point.items())])
            except ConfigError as err:
                raise ConfigError(f"{sweep.path}: space: {err}") from None
    fractions = [sweep.base.data.val_fraction]
    for d in sweep.space:
        if "data.val_fraction" in d.keys:
            fractions = d.ends("data.val_fraction")
    if min(fractions) <= 0:
        raise ConfigError(
            f"{sweep.path}: data.val_fraction: a sweep ranks its trials by validation loss: expected a number "
            f"in (0, 1), got {min(fractions)!r}"
        )


def _check(where: str, value: Any, ok: Any, expected: str) -> Any:
    if not ok:
        raise ConfigError(f"{where}: expected {expected}, got {_describe(value)}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def values_text(values: dict[str, Any]) -> str:
    """A trial's values on one line: model.hidden_size=256 train.learning_rate=0.002."""
    return " ".join(override(k, v) for k, v in values.items())
