"""Settings: kwargs > config.set > env GRAPHWREN_* > config file > defaults."""
from __future__ import annotations

import os
import threading

import pytest

from graphwren import config


pytestmark = pytest.mark.usefixtures("isolated_config")


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_defaults():
    s = config.resolve()
    assert s["backend"] == "local"
    assert s["storage"].startswith("file://")
    assert s["workers"] == (os.cpu_count() or 1)
    assert s["retries"] == 0 and s["keep"] is False and s["progress"] is True
    assert set(s) == set(config.DEFAULTS)


def test_env_variables_are_read_and_coerced(monkeypatch):
    monkeypatch.setenv("GRAPHWREN_STORAGE", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("GRAPHWREN_WORKERS", "3")
    monkeypatch.setenv("GRAPHWREN_KEEP", "yes")
    monkeypatch.setenv("GRAPHWREN_PROGRESS", "off")
    monkeypatch.setenv("GRAPHWREN_TASK_TIMEOUT", "12.5")
    monkeypatch.setenv("GRAPHWREN_RETRIES", "")   # empty means unset
    s = config.resolve()
    assert s["storage"] == "redis://127.0.0.1:6379/0"
    assert s["workers"] == 3 and s["keep"] is True and s["progress"] is False
    assert s["task_timeout"] == 12.5 and s["retries"] == 0


def test_bad_values_are_clear_errors(monkeypatch):
    monkeypatch.setenv("GRAPHWREN_KEEP", "perhaps")
    with pytest.raises(ValueError, match="'keep'.*not a boolean"):
        config.resolve()
    monkeypatch.delenv("GRAPHWREN_KEEP")
    with pytest.raises(ValueError, match="'workers'.*not a valid int"):
        config.resolve({"workers": "many"})
    with pytest.raises(TypeError, match="unknown graphwren setting"):
        config.resolve({"wrokers": 2})
    with pytest.raises(TypeError, match="unknown graphwren setting"):
        config.set(bogus=1)


def test_config_file_named_by_env(monkeypatch, tmp_path):
    path = _write(tmp_path / "gw.toml", 'storage = "s3://bucket/from-file"\nretries = 2\nspeculation = false\n')
    monkeypatch.setenv("GRAPHWREN_CONFIG", path)
    s = config.resolve()
    assert s["storage"] == "s3://bucket/from-file" and s["retries"] == 2 and s["speculation"] is False


def test_config_file_graphwren_table(monkeypatch, tmp_path):
    path = _write(tmp_path / "gw.toml", '[graphwren]\nworkers = 5\n')
    monkeypatch.setenv("GRAPHWREN_CONFIG", path)
    assert config.resolve()["workers"] == 5


def test_config_file_unknown_name(monkeypatch, tmp_path):
    path = _write(tmp_path / "gw.toml", 'stroage = "x"\n')
    monkeypatch.setenv("GRAPHWREN_CONFIG", path)
    with pytest.raises(TypeError, match="gw.toml"):
        config.resolve()


def test_home_config_file(monkeypatch, tmp_path):
    monkeypatch.delenv("GRAPHWREN_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".graphwren").mkdir()
    _write(tmp_path / ".graphwren" / "config.toml", 'backend = "lambda"\n')
    assert config.resolve()["backend"] == "lambda"


def test_precedence(monkeypatch, tmp_path):
    path = _write(tmp_path / "gw.toml", 'retries = 1\nworkers = 1\nkeep = true\npoll_interval = 0.5\n')
    monkeypatch.setenv("GRAPHWREN_CONFIG", path)
    monkeypatch.setenv("GRAPHWREN_RETRIES", "2")
    monkeypatch.setenv("GRAPHWREN_WORKERS", "2")
    with config.set(workers=3, keep=False):
        s = config.resolve({"keep": True, "progress": None})   # None kwargs are ignored
        assert s["poll_interval"] == 0.5          # file
        assert s["retries"] == 2                  # env beats file
        assert s["workers"] == 3                  # config.set beats env
        assert s["keep"] is True                  # kwargs beat config.set
        assert s["progress"] is True              # default
    assert config.resolve()["workers"] == 2


def test_set_nests_and_undoes_on_exit():
    with config.set(retries=1):
        with config.set(retries=2, keep=True):
            assert config.get("retries") == 2 and config.get("keep") is True
        assert config.get("retries") == 1 and config.get("keep") is False
    assert config.get("retries") == 0


def test_set_without_with_applies_at_once_and_reset_clears():
    config.set(retries=4)
    assert config.get("retries") == 4
    assert config.get("retries", override=1) == 1
    config.reset()
    assert config.get("retries") == 0


def test_set_as_decorator():
    @config.set(keep=True)
    def inside():
        return config.get("keep")

    assert inside() is True
    assert config.get("keep") is False
    assert inside() is True          # every call applies it again
    assert config.get("keep") is False


def test_set_is_visible_from_other_threads():
    seen = []
    with config.set(retries=3):
        t = threading.Thread(target=lambda: seen.append(config.get("retries")))
        t.start()
        t.join()
    assert seen == [3]
