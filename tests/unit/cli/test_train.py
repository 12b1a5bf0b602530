"""``audiosim train``: the split file and the degradation settings it is given
are checked before anything trains, and the settings reach the run."""

from __future__ import annotations

import json

import pytest

from audiosim.cli import main as cli
from audiosim.cli.train import augment_config
from audiosim.config import AugmentConfig


def test_an_unreadable_split_file_is_a_usage_error_naming_it(make_wav, tmp_path, capsys) -> None:
    songs = [make_wav(f"s{i}.wav", seconds=2.0, freq=300.0 + 100 * i) for i in range(2)]
    bad = tmp_path / "roles.json"
    bad.write_text("{not json")
    code = cli.main(["train", *map(str, songs), "--split", str(bad), "--out", str(tmp_path / "m.pt"),
                     "--home", str(tmp_path / "home")])
    assert code == 2
    assert "roles.json" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


def test_a_split_without_validation_tracks_is_refused(make_wav, tmp_path, capsys) -> None:
    songs = [make_wav(f"s{i}.wav", seconds=2.0, freq=300.0 + 100 * i) for i in range(2)]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [], "validation": []}))
    code = cli.main(["train", *map(str, songs), "--split", str(split), "--out", str(tmp_path / "m.pt"),
                     "--home", str(tmp_path / "home")])
    assert code == 2
    assert "both sides of the split" in capsys.readouterr().err


def test_augment_settings_change_only_the_fields_named() -> None:
    cfg = augment_config({"p_babble": 0.5, "babble_snr_db": [-2, 10]})
    assert cfg.p_babble == 0.5 and cfg.babble_snr_db == (-2, 10)
    assert cfg == AugmentConfig(p_babble=0.5, babble_snr_db=(-2, 10))


@pytest.mark.parametrize("pair, says", [
    ("p_babble=lots", "expected a number"),
    ("snr_db=[1]", "a list of 2 numbers"),
    ("p_talk=0.5", "no AugmentConfig field"),
    ("babble_talkers=[2.5, 7]", "a list of 2 whole numbers"),
    ("p_babble", "FIELD=VALUE"),
])
def test_a_bad_augment_setting_is_a_usage_error_before_anything_trains(make_wav, tmp_path, capsys, pair, says) -> None:
    songs = [make_wav(f"s{i}.wav", seconds=2.0, freq=300.0 + 100 * i) for i in range(2)]
    code = cli.main(["train", *map(str, songs), "--augment", pair, "--out", str(tmp_path / "m.pt"),
                     "--home", str(tmp_path / "home")])
    assert code == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "home").exists()


def test_augment_settings_and_threads_reach_the_training_run(make_wav, tmp_path, monkeypatch) -> None:
    seen = {}

    def fake_train(tracks, out, cache_dir, **kw):
        seen.update(kw)
        return {"step": 0, "validation": {}}

    monkeypatch.setattr("audiosim.training.loop.train_from_tracks", fake_train)
    songs = [make_wav(f"s{i}.wav", seconds=2.0, freq=300.0 + 100 * i) for i in range(2)]
    code = cli.main(["train", *map(str, songs), "--augment", "p_babble=0.45", "--augment", "babble_talkers=[3, 8]",
                     "--threads", "2", "--out", str(tmp_path / "m.pt"), "--home", str(tmp_path / "home")])
    assert code == 0
    assert seen["augment_cfg"] == AugmentConfig(p_babble=0.45, babble_talkers=(3, 8))
    assert seen["cfg"].threads == 2
