"""The data home: its layout, resolved from an argument, $AUDIOSIM_HOME or ./data."""

from __future__ import annotations

import pytest

from audiosim.store.home import DataHome


def test_data_home_layout(tmp_path, monkeypatch):
    home = DataHome(tmp_path / "h")
    assert home.catalog_path == tmp_path / "h" / "catalog.sqlite"
    assert not home.root.exists()
    home.create()
    for d in ("features", "index", "reports", "cache"):
        assert (tmp_path / "h" / d).is_dir()
    monkeypatch.setenv("AUDIOSIM_HOME", str(tmp_path / "env"))
    assert DataHome.resolve().root == tmp_path / "env"
    assert DataHome.resolve(str(tmp_path / "x")).root == tmp_path / "x"
    assert DataHome.resolve(home) is home


def test_data_home_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="f"):
        DataHome(tmp_path / "f").create()
