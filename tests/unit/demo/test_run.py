"""The demo's run: numbered stage lines, each followed by its time."""

from __future__ import annotations

import re

from audiosim.demo.run import _Stages


def test_each_stage_prints_a_numbered_line_then_its_time():
    lines: list[str] = []
    stages = _Stages(2, lines.append)
    with stages.stage("first"):
        lines.append("inside")
    with stages.stage("second"):
        pass
    assert lines[:2] == ["1/2 first", "inside"] and lines[3] == "2/2 second"
    assert re.fullmatch(r" +done in \d+:\d\d", lines[2]) and re.fullmatch(r" +done in \d+:\d\d", lines[4])
