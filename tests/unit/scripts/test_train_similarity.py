"""scripts/train_similarity.py: the dev corpus's soundtrack labels (the script is loaded from its file)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "train_similarity.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_similarity_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_soundtrack_labels(script):
    assert script.soundtrack("/usr/share/games/hedgewars/Data/Music/x.ogg") == "hedgewars"
    assert script.soundtrack("/usr/share/scummvm/drascula/audio/1.ogg") == "drascula"
    assert script.soundtrack("/usr/share/freedroidrpg/data/sound/music/a.ogg") == "freedroidrpg"
    assert script.soundtrack("/home/me/album/song.ogg") == "album"


def test_the_script_explains_itself(script, capsys):
    with pytest.raises(SystemExit) as e:
        script.main(["--help"])
    assert e.value.code == 0 and "--soundtrack-negatives" in capsys.readouterr().out
