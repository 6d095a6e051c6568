"""The engine app refuses to start with a price table it cannot use, naming the entry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from engine.apps import EngineConfig

ROOT = Path(__file__).resolve().parents[2]


def manage_check(prices: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "klyntos.settings",
        "KLYNTOS_DATA_DIR": str(tmp_path),
        "KLYNTOS_MODEL_PRICES": prices,
    }
    return subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_bad_price_table_is_a_startup_error(tmp_path: Path) -> None:
    bad = manage_check('{"gpt-4o": {"input": "2.5", "output": 10}}', tmp_path)
    assert bad.returncode != 0
    assert "KLYNTOS_MODEL_PRICES: gpt-4o.input: must be a number" in bad.stderr
    good = manage_check('{"my-model": {"input": 2.5, "output": 10}}', tmp_path)
    assert good.returncode == 0, good.stderr


def test_ready_checks_the_configured_table(settings: object) -> None:
    import engine

    config = EngineConfig("engine", engine)
    settings.KLYNTOS_MODEL_PRICES = "not json"  # type: ignore[attr-defined]
    with pytest.raises(ImproperlyConfigured, match="KLYNTOS_MODEL_PRICES: not JSON"):
        config.ready()


@pytest.mark.parametrize("wait", [-1.0, 5.5])
def test_ready_checks_the_preconnect_wait(settings: object, wait: float) -> None:
    import engine

    config = EngineConfig("engine", engine)
    settings.KLYNTOS_PRECONNECT_WAIT = wait  # type: ignore[attr-defined]
    with pytest.raises(ImproperlyConfigured, match="KLYNTOS_PRECONNECT_WAIT must be seconds"):
        config.ready()
    settings.KLYNTOS_PRECONNECT_WAIT = 0  # type: ignore[attr-defined]
    config.ready()  # 0 turns it off: no error


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KLYNTOS_MAX_ITEMS_IN_FLIGHT", 0),
        ("KLYNTOS_MAX_ITEMS_IN_FLIGHT", 10_001),
        ("KLYNTOS_MAX_ITEMS_PER_RUN", 0),
        ("KLYNTOS_MAX_ITEMS_PER_RUN", 10_000_001),
    ],
)
def test_ready_checks_the_run_item_limits(settings: object, name: str, value: int) -> None:
    import engine
    from engine.config import loop_item_limits

    config = EngineConfig("engine", engine)
    setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured, match=f"{name} must be from 1 to"):
        config.ready()
    setattr(settings, name, 7)
    config.ready()
    assert 7 in loop_item_limits()  # what each run's options carry (engine/runner.py)
