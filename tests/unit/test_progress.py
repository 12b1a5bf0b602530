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


def test_a_stage_postfix_shows_beside_the_bar_and_at_the_end_of_the_stage_line() -> None:
    out, clock = io.StringIO(), FakeClock()
    with Progress(out, clock=clock) as progress:
        for i in range(3):
            clock.now += 4
            progress("ingest", {"done": i + 1, "total": 3, "postfix": {"failed": int(i > 0)}})
    assert out.getvalue() == "ingest: 3 files in 0:12 (failed 1)\n"
    assert stage_line("ingest", 1, 2.0, {"failed": 0}) == "ingest: 1 file in 0:02 (failed 0)"
    term = Terminal()
    with Progress(term) as progress:
        progress("ingest", {"done": 1, "total": 2, "postfix": {"failed": 1}})
        progress("ingest", {"done": 2, "total": 2, "postfix": {"failed": 1}})
    assert "failed=1" in term.getvalue() and "2/2" in term.getvalue()


def test_song_vectors_report_their_stage_to_the_helper_and_a_line_without_a_terminal(monkeypatch) -> None:
    """``SongVectors.many`` (used by ``catalogue_vectors``) counts the songs it analyses, failures included."""
    from audiosim.similarity import vectors

    sv = object.__new__(vectors.SongVectors)  # no model or cache: only the loop's reporting is under test
    monkeypatch.setattr(sv, "cached", lambda h: "cached" if h == "h0" else None, raising=False)
    monkeypatch.setattr(sv, "_analyse_rows",
                        lambda rows, hashes, paths: ({i: "a" for i in rows if i != 3}, {3: "bad"} if 3 in rows else {}),
                        raising=False)
    heard: list[tuple[str, dict]] = []
    n = vectors.BATCH_SONGS + 3
    done, failed = sv.many([f"h{i}" for i in range(n)], [f"p{i}" for i in range(n)],
                           progress=lambda stage, info: heard.append((stage, info)))
    assert len(done) == n - 1 and failed == {3: "bad"}
    assert heard == [("song-vectors", {"done": vectors.BATCH_SONGS, "total": n - 1}),
                     ("song-vectors", {"done": n - 1, "total": n - 1})]
    out, clock = io.StringIO(), FakeClock()
    with Progress(out, clock=clock) as progress:
        sv.many([f"h{i}" for i in range(n)], [f"p{i}" for i in range(n)], progress=progress)
    assert out.getvalue() == f"song vectors: {n - 1} songs in 0:00\n"
    assert sv.many(["h0"], ["p0"], progress=lambda stage, info: heard.append(("again", info))) and heard[-1][0] != "again"
