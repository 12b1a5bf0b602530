"""The index under concurrent readers (real subprocesses).

Readers keep answering while updates and compactions publish new
generations. Writers killed at named points are in ``test_faults.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import soundfile as sf

from audiosim.index import manifest as M
from audiosim.index import writer as IB
from audiosim.ingest.ingest import ingest_many
from audiosim.store.home import DataHome

ROOT = Path(__file__).resolve().parents[2]

from index_support import CFG, SR, answers, clips_of, make_home, models, songs  # noqa: E402,F401 (fixtures)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}

READER = textwrap.dedent(
    """
    import sys, time, json
    import numpy as np, soundfile as sf
    from audiosim.match.matcher import Matcher
    home, model, clip, stop = sys.argv[1:5]
    x, sr = sf.read(clip, dtype="float32")
    n = errors = reopened = 0
    seen = set()
    t_end = time.time() + 240
    m = Matcher(home, model, threshold=0.0)
    fresh = 0
    while time.time() < t_end:
        try:
            r = m.match(x, sr)
            assert r.track_id is not None
            if m.refresh():
                reopened += 1
            with Matcher(home, model, threshold=0.0) as m2:  # a reader that opens anew each time
                assert m2.match(x, sr).track_id is not None
                seen.add(m2.index.manifest.generation)
                fresh += 1
            n += 1
        except Exception as e:
            errors += 1
            print("ERROR", type(e).__name__, e, file=sys.stderr, flush=True)
        if n == 1:
            print("READY", flush=True)
        import os
        if os.path.exists(stop):
            break
    print(json.dumps({"n": n, "errors": errors, "reopened": reopened, "generations": sorted(seen)}), flush=True)
    """
)



def test_queries_keep_working_during_rebuilds(tmp_path: Path, songs, models) -> None:
    home = make_home(tmp_path, songs, 3)
    IB.update(home, models[0], CFG)
    clip = tmp_path / "clip.wav"
    x, _ = sf.read(songs[0], dtype="float32")
    sf.write(clip, x[3 * SR : 6 * SR], SR)
    stop = tmp_path / "stop"
    readers = [
        subprocess.Popen([sys.executable, "-c", READER, str(home), str(models[0]), str(clip), str(stop)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        for _ in range(2)
    ]
    try:
        for r in readers:
            assert r.stdout.readline().strip() == "READY"
        for batch in (songs[3:5], songs[5:7]):
            ingest_many(batch, home)
            IB.update(home, models[0], CFG)
            time.sleep(0.5)
            IB.compact(home)
            time.sleep(0.5)
        stop.touch()
        outs = [r.communicate(timeout=120) for r in readers]
    finally:
        for r in readers:
            if r.poll() is None:
                r.kill()
    for out, err in outs:
        stats = json.loads(out.strip().splitlines()[-1])
        assert stats["errors"] == 0, err
        assert stats["n"] >= 2 and stats["reopened"] >= 1
    assert M.Manifest.load(DataHome(home).index_dir).generation == 5
