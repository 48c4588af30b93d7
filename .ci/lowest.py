"""The lowest versions pyproject.toml declares, for .ci/run's lowest-version run.

`python3 .ci/lowest.py python` prints the lowest Python (`requires-python = ">=3.10"` -> `3.10`);
`python3 .ci/lowest.py pins` prints each runtime dependency pinned to its lower bound, as a pip
constraints file (`"numpy>=1.24"` -> `numpy==1.24`). A dependency without a `>=` bound is an error:
a bound nothing tests is what this run is for. Needs Python >= 3.11 (tomllib).
"""

import re
import sys
from pathlib import Path

import tomllib  # standard from Python 3.11; ruff, targeting 3.10, sorts it as third-party

# name[extras] specifiers ; marker
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*?)\s*(;.*)?$")


def lower_bound(specifiers: str) -> str | None:
    """The version after `>=` in a specifier list: ">=1.24,<3" -> "1.24"; None when there is none."""
    for spec in specifiers.split(","):
        spec = spec.strip()
        if spec.startswith(">="):
            return spec[2:].strip()
    return None


def main(what: str) -> int:
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    if what == "python":
        bound = lower_bound(project["requires-python"])
        if bound is None:
            print(f"requires-python has no >= bound: {project['requires-python']!r}", file=sys.stderr)
            return 1
        print(".".join(bound.split(".")[:2]))
        return 0
    if what == "pins":
        for requirement in project["dependencies"]:
            match = REQUIREMENT.match(requirement)
            bound = lower_bound(match.group(3)) if match else None
            if match is None or bound is None:
                print(f"dependency without a >= lower bound: {requirement!r}", file=sys.stderr)
                return 1
            print(f"{match.group(1)}=={bound}{match.group(4) or ''}")
        return 0
    print("usage: lowest.py python|pins", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) == 2 else ""))
