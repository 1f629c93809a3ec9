"""Settings: kwargs > config.set > env GRAPHWREN_* > config file > defaults."""
from __future__ import annotations

import os
import re
import threading
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _home_config(monkeypatch, tmp_path, text: str):
    """``~/.graphwren/config.toml`` holding ``text``, with HOME at tmp_path and no named file."""
    monkeypatch.delenv("GRAPHWREN_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".graphwren").mkdir()
    return _write(tmp_path / ".graphwren" / "config.toml", text)


def test_home_config_file(monkeypatch, tmp_path):
    _home_config(monkeypatch, tmp_path, 'backend = "lambda"\n')
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



def test_resolved_settings_pass_through_unchanged():
    with config.set(workers=3):
        s = config.resolve({"retries": 4})
    assert isinstance(s, config.Settings) and s["workers"] == 3 and s["retries"] == 4
    assert config.resolve(s) is s             # resolved once, read as is: config.set is over now
    plain = dict(s)                           # a plain dict is only overrides: resolved and checked again
    again = config.resolve(plain)
    assert type(again) is config.Settings and again == s and again is not plain
    with pytest.raises(config.UnknownSetting, match="wrokers"):
        config.resolve({**plain, "wrokers": 2})

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


# -- where each value came from ---------------------------------------------------------------
def test_sources_name_every_layer(monkeypatch, tmp_path):
    path = _write(tmp_path / "gw.toml", 'retries = 1\npoll_interval = 0.5\n')
    monkeypatch.setenv("GRAPHWREN_CONFIG", path)
    monkeypatch.setenv("GRAPHWREN_TASK_RETRIES", "5")
    with config.set(keep=True):
        src = config.sources({"progress": False, "workers": None})
    assert src["retries"] == (1, f"file {path}") and src["poll_interval"] == (0.5, f"file {path}")
    assert src["task_retries"] == (5, "env GRAPHWREN_TASK_RETRIES")
    assert src["keep"] == (True, "config.set")
    assert src["progress"] == (False, "keyword")
    assert src["backend"] == ("local", "default")
    assert src["workers"] == (os.cpu_count() or 1, "default (one per core)")
    assert set(src) == set(config.DEFAULTS)
    assert config.resolve({"progress": False}) == {k: v for k, (v, _) in
                                                   config.sources({"progress": False}).items()}


_LAYERS = ("file", "env", "set", "keyword")


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(_LAYERS), st.integers(0, 99)),
       st.dictionaries(st.sampled_from(_LAYERS), st.booleans()))
def test_precedence_property(retries, keep):
    """Whatever subset of layers sets a value, the highest wins and is named as the source."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "gw.toml")
        with open(path, "w") as f:
            f.write("".join(f"{n} = {str(v).lower()}\n" for n, v in
                            (("retries", retries.get("file")), ("keep", keep.get("file"))) if v is not None))
        env = {"GRAPHWREN_CONFIG": path}
        env.update({"GRAPHWREN_RETRIES": str(retries["env"])} if "env" in retries else {})
        env.update({"GRAPHWREN_KEEP": str(keep["env"])} if "env" in keep else {})
        saved = {k: os.environ.get(k) for k in ("GRAPHWREN_CONFIG", "GRAPHWREN_RETRIES", "GRAPHWREN_KEEP")}
        os.environ.pop("GRAPHWREN_RETRIES", None)
        os.environ.pop("GRAPHWREN_KEEP", None)
        os.environ.update(env)
        try:
            layer = {n: d["set"] for n, d in (("retries", retries), ("keep", keep)) if "set" in d}
            kwargs = {n: d["keyword"] for n, d in (("retries", retries), ("keep", keep)) if "keyword" in d}
            with config.set(**layer):
                src = config.sources(kwargs)
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    names = {"file": f"file {path}", "env": None, "set": "config.set", "keyword": "keyword"}
    for name, given_ in (("retries", retries), ("keep", keep)):
        top = max(given_, key=_LAYERS.index, default=None)
        want = config.DEFAULTS[name] if top is None else given_[top]
        where = "default" if top is None else names[top] or f"env GRAPHWREN_{name.upper()}"
        assert src[name] == (want, where)


# -- checked values ---------------------------------------------------------------------------
def test_wrong_types_name_the_setting_and_the_source(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHWREN_WORKERS", "four")
    with pytest.raises(config.ConfigError, match=r"'workers' = 'four' \(from env GRAPHWREN_WORKERS\)"):
        config.resolve()
    monkeypatch.delenv("GRAPHWREN_WORKERS")
    path = _write(tmp_path / "gw.toml", 'keep = "maybe"\ntask_timeout = "soon"\n')
    monkeypatch.setenv("GRAPHWREN_CONFIG", path)
    with pytest.raises(ValueError, match=rf"'keep' = 'maybe' \(from file {path}\) is not a boolean"):
        config.resolve()
    _write(tmp_path / "gw.toml", 'storage = 7\n')
    with pytest.raises(ValueError, match=rf"'storage' = 7 \(from file {path}\) is not a string"):
        config.resolve()
    _write(tmp_path / "gw.toml", 'workers = 2.5\n')
    with pytest.raises(ValueError, match="'workers' = 2.5 .* whole number"):
        config.resolve()
    monkeypatch.setenv("GRAPHWREN_CONFIG", os.devnull)
    with pytest.raises(ValueError, match=r"'retries' = True \(from keyword argument\)"):
        config.resolve({"retries": True})
    with pytest.raises(ValueError, match=r"'task_timeout' = -1 \(from config.set\) is not a positive"):
        config.set(task_timeout=-1)
    with pytest.raises(ValueError, match=r"'retries' = -1 .* zero or more"):
        config.resolve({"retries": -1})
    with pytest.raises(ValueError, match=r"'backend' = 'lamda' .* one of 'local', 'lambda'"):
        config.resolve({"backend": "lamda"})
    with pytest.raises(ValueError, match=r"'shuffle_redis' = 's3://b/x' .* starting redis:// or rediss://"):
        config.resolve({"shuffle_redis": "s3://b/x"})
    with pytest.raises(TypeError, match=r"\['wrokers'\] in keyword arguments \(did you mean 'workers'\?\)"):
        config.resolve({"wrokers": 2})


def test_integers_and_floats_from_text(monkeypatch):
    monkeypatch.setenv("GRAPHWREN_INLINE_LIMIT", " 1024 ")
    monkeypatch.setenv("GRAPHWREN_POLL_INTERVAL", "1")
    s = config.resolve()
    assert s["inline_limit"] == 1024 and s["poll_interval"] == 1.0 and isinstance(s["poll_interval"], float)


def test_set_none_restores_the_default(monkeypatch):
    monkeypatch.setenv("GRAPHWREN_SHUFFLE_REDIS", "redis://127.0.0.1:1/0")
    assert config.get("shuffle_redis") == "redis://127.0.0.1:1/0"
    with config.set(shuffle_redis=None):
        assert config.get("shuffle_redis") is None
        assert config.sources()["shuffle_redis"] == (None, "config.set")


# -- store URLs -------------------------------------------------------------------------------
@pytest.mark.parametrize("typo,meant", [
    ("s3:/bucket/x", "s3://bucket/x"), ("s3:bucket", "s3://bucket"),
    ("redis:/127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"), ("rediss:host:6380", "rediss://host:6380"),
    ("file:/x/y", "file:///x/y"), ("S3:/b", "s3://b"),
])
def test_mistyped_store_url_names_what_was_meant(typo, meant, tmp_path, monkeypatch):
    from graphwren.errors import StorageError
    from graphwren.runtime.storage import open_store
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError, match=f"did you mean {re.escape(repr(meant))}"):
        open_store(typo)
    monkeypatch.setenv("GRAPHWREN_STORAGE", typo)
    with pytest.raises(config.StoreURLError, match=r"from env GRAPHWREN_STORAGE"):
        config.resolve()
    with pytest.raises(StorageError, match=re.escape(repr(meant))):
        import graphwren as gw
        gw.Executor(storage=typo)
    assert list(tmp_path.iterdir()) == []   # no local folder named after the typo


@pytest.mark.parametrize("url,words", [
    ("ftp://host/x", ["unsupported store URL scheme 'ftp'", "supported: file:///path"]),
    ("rdis://127.0.0.1/0", ["'rdis'", "did you mean redis://"]),
    ("ftp:/x", ["looks like a mistyped URL", "supported:", "./ftp:/x"]),
])
def test_unknown_store_url_schemes(url, words, monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHWREN_CONFIG", _write(tmp_path / "gw.toml", f'shuffle_storage = "{url}"\n'))
    with pytest.raises(config.StoreURLError) as e:
        config.resolve()
    for w in words + [f"file {tmp_path / 'gw.toml'}", "'shuffle_storage'"]:
        assert w in str(e.value)


def test_plain_paths_stay_plain(tmp_path, monkeypatch):
    from graphwren.runtime.storage import check_url, open_store
    for url in ["rel/dir", "/abs/dir", "/abs/with:colon", "rel/a:b", "./s3:bucket", "~/x"]:
        check_url(url)
    monkeypatch.chdir(tmp_path)
    open_store("./s3:bucket").put("k", b"v")   # the escape the error message suggests
    assert (tmp_path / "s3:bucket" / "k").read_bytes() == b"v"


def test_default_storage_is_the_users_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert config.resolve()["storage"] == f"file://{tmp_path}/xdg/graphwren"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")   # the XDG spec: ignore relative paths
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config.resolve()["storage"] == f"file://{tmp_path}/home/.cache/graphwren"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert config.sources()["storage"] == (f"file://{tmp_path}/home/.cache/graphwren", "default")


# -- the environment --------------------------------------------------------------------------
@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(config, "_warned", set())


@pytest.mark.parametrize("var,closest", [
    ("GRAPHWREN_WORKER", "GRAPHWREN_WORKERS (setting 'workers')"),
    ("GRAPHWREN_STORGE", "GRAPHWREN_STORAGE (setting 'storage')"),
    ("GRAPHWREN_TASK_TIMEOUTS", "GRAPHWREN_TASK_TIMEOUT (setting 'task_timeout')"),
])
def test_unknown_env_variable_warns_once_with_the_closest_setting(var, closest, monkeypatch, fresh_warnings):
    monkeypatch.setenv(var, "4")
    with pytest.warns(config.ConfigWarning) as record:
        s = config.resolve()
    assert [str(w.message) for w in record] == [
        f"environment variable {var} is not a graphwren setting and is ignored; did you mean {closest}?"]
    assert s["workers"] == (os.cpu_count() or 1)   # ignored, as it says
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a second resolve does not warn again
        config.resolve()
        config.get("retries")


def test_known_env_variables_do_not_warn(monkeypatch, fresh_warnings):
    monkeypatch.setenv("GRAPHWREN_CONFIG", os.devnull)
    monkeypatch.setenv("GRAPHWREN_LAMBDA_TIMEOUT_MARGIN", "5")
    monkeypatch.setenv("GRAPHWREN_VERSION", "0.1.0")
    monkeypatch.setenv("GRAPHWREN_WORKERS", "2")
    monkeypatch.setenv("GRAPHWREN_XYZZY", "1")
    with pytest.warns(config.ConfigWarning) as record:
        config.resolve()
    assert [str(w.message) for w in record] == [
        "environment variable GRAPHWREN_XYZZY is not a graphwren setting and is ignored"]


# -- config files -----------------------------------------------------------------------------
def test_missing_named_config_file_is_an_error(monkeypatch, tmp_path):
    missing = tmp_path / "nope" / "gw.toml"
    monkeypatch.setenv("GRAPHWREN_CONFIG", str(missing))
    with pytest.raises(config.ConfigError, match=f"config file {missing} named by GRAPHWREN_CONFIG does not exist"):
        config.resolve()


def test_unreadable_config_file_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHWREN_CONFIG", str(tmp_path))   # a directory
    with pytest.raises(config.ConfigError, match=f"config file {tmp_path} cannot be read"):
        config.resolve()


def test_malformed_named_config_file_names_file_and_line(monkeypatch, tmp_path):
    path = _write(tmp_path / "gw.toml", 'workers = 2\nretries = = 3\n')
    monkeypatch.setenv("GRAPHWREN_CONFIG", path)
    with pytest.raises(config.ConfigError, match=f"config file {path} is not valid TOML: .*line 2"):
        config.resolve()


def test_malformed_home_config_file_names_file_and_line(monkeypatch, tmp_path):
    home = _home_config(monkeypatch, tmp_path, '# settings\n\n[graphwren\nworkers = 2\n')
    with pytest.raises(config.ConfigError, match=f"config file {home} is not valid TOML: .*line 3"):
        config.resolve()
    os.unlink(home)
    assert config.resolve()["workers"] == (os.cpu_count() or 1)   # no home file is fine
    assert config.config_file() == (None, False)


def test_variables_graphwren_reads_that_are_not_settings_do_not_warn(isolated_config, monkeypatch, recwarn):
    from graphwren.runtime.backends.lambda_ import TOKEN_ENV
    monkeypatch.setenv(TOKEN_ENV, "t0ken")
    monkeypatch.setattr(config, "_warned", set())   # warnings come once per process
    config.resolve()
    assert not [w for w in recwarn if TOKEN_ENV in str(w.message)]
