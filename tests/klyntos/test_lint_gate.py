"""The lint gate is wired in: `make test` runs `make lint` first, and the rules bite."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")


def _recipe(target: str) -> tuple[list[str], list[str]]:
    makefile = (REPO / "Makefile").read_text()
    match = re.search(rf"^{target}:([^\n]*)\n((?:\t[^\n]*\n)+)", makefile, re.M)
    assert match, f"no {target} target in the Makefile"
    return match.group(1).split(), [line.strip() for line in match.group(2).splitlines()]


def test_make_test_runs_lint_first() -> None:
    prerequisites, _ = _recipe("test")
    assert "lint" in prerequisites


def test_lint_runs_every_checker() -> None:
    _, recipe = _recipe("lint")
    joined = "\n".join(recipe)
    for command in ("ruff check .", "ruff format --check .", "mypy", "npm run lint"):
        assert command in joined, command


def _ruff_codes(source: str, filename: str) -> set[str]:
    result = subprocess.run(
        [
            str(RUFF),
            "check",
            "--no-cache",
            "--output-format",
            "concise",
            "--stdin-filename",
            filename,
            "-",
        ],
        input=source,
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    return set(re.findall(r": ([A-Z]+[0-9]+) ", result.stdout))


def test_security_and_async_rules_apply_to_product_code() -> None:
    source = (
        "import random\nimport time\n\n\n"
        "async def pick() -> float:\n    time.sleep(1)\n    return random.random()\n"
    )
    codes = _ruff_codes(source, "engine/core/example.py")
    assert {"S311", "ASYNC251"} <= codes


def test_tests_may_assert() -> None:
    assert "S101" not in _ruff_codes("def test_x() -> None:\n    assert 1\n", "tests/test_x.py")
    assert "S101" in _ruff_codes("def f() -> None:\n    assert 1\n", "engine/core/example.py")
