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


def _ci_run_with_make_exiting(code: int, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`.ci/run` with a `make` that exits `code`, and stand-ins saying PostgreSQL and Redis
    are up (and installing nothing), so the script goes straight to `make test`."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    stand_ins = {
        "make": f'echo "make $*" >> "{tmp_path}/calls"\nexit {code}',
        "pg_isready": "exit 0",
        "redis-cli": "echo PONG",
        "apt-get": "exit 0",
        "npm": "exit 0",
    }
    for name, body in stand_ins.items():
        (fake / name).write_text(f"#!/bin/sh\n{body}\n")
        (fake / name).chmod(0o755)
    (tmp_path / "calls").unlink(missing_ok=True)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(
        [str(REPO / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60
    )


def test_ci_run_fails_when_make_test_fails(tmp_path: Path) -> None:
    # `make test` stops at `lint` with make's exit status 2 when a checker fails.
    failed = _ci_run_with_make_exiting(2, tmp_path)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert (tmp_path / "calls").read_text() == "make test\n"
    assert _ci_run_with_make_exiting(0, tmp_path).returncode == 0
    # pytest's "no tests collected" is a failure too.
    assert _ci_run_with_make_exiting(5, tmp_path).returncode == 1
