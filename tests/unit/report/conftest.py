"""Fixtures of the report tests (see ``tests/report_support.py``)."""

from __future__ import annotations

import pytest
from report_support import Library, build_library


@pytest.fixture(scope="session")
def lib(tmp_path_factory: pytest.TempPathFactory) -> Library:
    """The songbook library of the report tests (built once: ingest is slow)."""
    return build_library(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="session")
def mix_report(lib: Library):
    """A report on five library songs (one of them ingested by the report), a missing file and a repeated id."""
    from audiosim.report.analysis import build_report

    pl = lib.root / "mix.m3u"
    pl.write_text("\n".join([str(lib.paths[i]) for i in (0, 2, 4, 7, 1)] + ["nowhere.wav", "4"]) + "\n")
    return build_report(pl, lib.home, model=lib.model, n_additions=3)


@pytest.fixture(scope="session")
def hostile_report(lib: Library):
    """A report on three library songs and the two with hostile tags (a script title, formula tags)."""
    from audiosim.report.analysis import build_report

    pl = lib.root / "hostile.m3u"
    pl.write_text("\n".join(str(p) for p in [*lib.hostile, *lib.paths[:3]]) + "\n")
    return build_report(pl, lib.home, model=lib.model, ingest=False, n_additions=3)
