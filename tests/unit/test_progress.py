"""The one progress helper: a bar in a terminal, a timed line per stage otherwise, nothing when quiet."""

from __future__ import annotations

import io

from audiosim.progress import Progress, as_callback, quiet, stage_line


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_without_a_terminal_each_counted_stage_ends_in_one_line_with_its_count_and_time() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = Progress(out, clock=clock)
    assert not progress.bars
    for i in range(20):
        clock.now += 2.05
        progress("embed", {"track_id": i, "done": i + 1, "total": 20})
    assert out.getvalue() == "embedding: 20 tracks in 0:41\n"


def test_a_stage_that_stops_early_ends_at_the_next_stage_or_at_close() -> None:
    out, clock = io.StringIO(), FakeClock()
    with Progress(out, clock=clock) as progress:
        progress("embed", {"done": 3, "total": 10})
        clock.now = 5
        progress("calibrate", {})  # an event closes the stage under way
        progress("calibrate-clips", {"done": 50, "total": 400})
        clock.now = 65
    assert out.getvalue().splitlines() == ["embedding: 3 tracks in 0:05", "calibration: 50 clips in 1:00"]


def test_events_without_counts_write_nothing_of_their_own() -> None:
    out = io.StringIO()
    with Progress(out) as progress:
        progress("plan", {"add": 3, "tombstone": 0, "missing": 0})
        progress("published", {"generation": 2})
    assert out.getvalue() == ""


def test_a_terminal_gets_a_bar_per_stage_named_for_people() -> None:
    out = Terminal()
    with Progress(out) as progress:
        assert progress.bars
        for i in range(4):
            progress("descriptors", {"done": i + 1, "total": 4})
    text = out.getvalue()
    assert "descriptors" in text and "4/4" in text and "song" in text


def test_quiet_progress_writes_nothing() -> None:
    out = Terminal()
    with Progress(out, enabled=False) as progress:
        progress("embed", {"done": 1, "total": 1})
    assert out.getvalue() == ""


def test_unknown_stages_are_named_as_given() -> None:
    assert stage_line("tiles", 7, 3725) == "tiles: 7 items in 1:02:05"
    assert stage_line("embed", 1, 2) == "embedding: 1 track in 0:02"


def test_a_bool_becomes_a_callback_and_a_callback_is_kept() -> None:
    def mine(stage: str, info: dict) -> None:
        pass

    assert as_callback(mine) is mine
    assert as_callback(False) is quiet and as_callback(None) is quiet
    assert isinstance(as_callback(True), Progress)
