"""The console's TOML config: found, read, and every bad setting named in one sentence."""

from __future__ import annotations

import pytest

from console.tui.config import ConfigError, config_path, load_config


def _write(tmp_path, text):
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_defaults_when_missing(tmp_path):
    cfg = load_config(tmp_path / "nope.toml")
    assert cfg.idle_lock_minutes == 15 and cfg.keys == {} and cfg.path is None


def test_full_file(tmp_path):
    p = _write(
        tmp_path,
        """
[console]
idle_lock_minutes = 2.5
theme = "nord"
[market_watch]
symbols = ["nse:infy", "NFO:NIFTY-FUT"]
[keys]
"order.buy" = "f5"
"squareoff" = "f10, ctrl+o"
""",
    )
    cfg = load_config(p)
    assert cfg.idle_lock_minutes == 2.5 and cfg.theme == "nord"
    assert cfg.watch_symbols == ["NSE:INFY", "NFO:NIFTY-FUT"]
    assert cfg.keys == {"order.buy": "f5", "squareoff": "f10,ctrl+o"}
    assert cfg.path == p


@pytest.mark.parametrize(
    "text, says",
    [
        ("[console\n", "not valid TOML"),
        ("[colors]\n", "unknown section [colors]"),
        ("[console]\nidle_lock = 3\n", "unknown setting console.idle_lock"),
        ("[console]\nidle_lock_minutes = -1\n", "console.idle_lock_minutes must be"),
        ("[console]\nidle_lock_minutes = true\n", "console.idle_lock_minutes must be"),
        ("[market_watch]\nsymbols = \"INFY\"\n", "market_watch.symbols must be a list"),
        ("[market_watch]\nsymbols = [\"INFY\"]\n", "write EXCHANGE:SYMBOL"),
        ("[keys]\n\"order.buyy\" = \"f1\"\n", "keys.order.buyy is not a key id"),
        ("[keys]\n\"order.buy\" = \"F 1!\"\n", "write Textual key names"),
    ],
)
def test_bad_settings_are_named(tmp_path, text, says):
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert says in str(err.value) and str(p) in str(err.value)


def test_where_it_is_found(tmp_path, monkeypatch):
    monkeypatch.delenv("LIFEBOAT_CONFIG", raising=False)
    monkeypatch.delenv("LIFEBOAT_HOME", raising=False)
    assert config_path(tmp_path / "home") == tmp_path / "home" / "config.toml"
    monkeypatch.setenv("LIFEBOAT_HOME", str(tmp_path / "h2"))
    assert config_path() == tmp_path / "h2" / "config.toml"
    monkeypatch.setenv("LIFEBOAT_CONFIG", str(tmp_path / "elsewhere.toml"))
    assert config_path(tmp_path / "home") == tmp_path / "elsewhere.toml"
    _write(tmp_path, "[console]\nidle_lock_minutes = 0\n").rename(tmp_path / "elsewhere.toml")
    assert load_config().idle_lock_minutes == 0
