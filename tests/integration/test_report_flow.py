"""The playlist-report Prefect flow: the same report as the library writes, its summary and tables as artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_support import SCRIPT_TITLE, build_library

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("report-flow"))


def test_report_flow_publishes_artifacts(lib, prefect_harness, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.report import report_flow

    pl = lib.root / "flow.txt"
    pl.write_text("\n".join(str(p) for p in [*lib.paths[:3], lib.hostile[0]]) + "\n")
    html = report_flow(str(pl), home=str(lib.home), out=str(tmp_path / "flow"))
    assert Path(html).is_file() and (tmp_path / "flow" / "summary.md").is_file()

    keys = ["playlist-report-summary", "playlist-report-tracks", "playlist-report-order", "playlist-report-additions"]
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    assert {a.key for a in arts} == set(keys)
    # the Prefect harness is shared by the session: other tests' reports publish under the same keys
    summary = next(a for a in arts if a.key == "playlist-report-summary" and str(tmp_path / "flow") in a.data)
    assert "Cohesion" in summary.data and "report.html" in summary.data
    assert SCRIPT_TITLE not in summary.data and "&lt;script&gt;alert(1)&lt;/script&gt;" in summary.data
