"""Index settings: the stored ones with the user's overrides, and the --speeds list."""

from __future__ import annotations

from pathlib import Path

import pytest

from audiosim.config import FeatureConfig, IndexConfig
from audiosim.index.manifest import Manifest
from audiosim.index.settings import index_config_for, parse_speeds
from audiosim.store.home import DataHome


def test_speeds_are_sorted_without_repeats_and_always_include_one() -> None:
    assert parse_speeds("1.05,0.95") == (0.95, 1.0, 1.05)
    assert parse_speeds("0.9, 0.9,,") == (0.9, 1.0)
    assert parse_speeds("1") == (1.0,)


def test_speeds_that_are_not_numbers_are_refused_with_the_command_line_message() -> None:
    with pytest.raises(ValueError, match=r"^--speeds takes numbers separated by commas, like 0.95,1,1.05, not 'fast'$"):
        parse_speeds("fast")


def test_speeds_outside_half_to_double_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^--speeds must be between 0.5 and 2, not '0.4,1'$"):
        parse_speeds("0.4,1")
    assert parse_speeds("0.5,2") == (0.5, 1.0, 2.0)


def test_no_override_leaves_the_settings_to_the_index(tmp_path: Path) -> None:
    assert index_config_for(tmp_path) is None


def test_overrides_without_an_index_start_from_the_defaults(tmp_path: Path) -> None:
    cfg = index_config_for(tmp_path, max_false_match=0.05)
    assert cfg == IndexConfig(max_false_match=0.05)
    assert index_config_for(tmp_path, query_speeds=(0.95, 1.0)) == IndexConfig(query_speeds=(0.95, 1.0))


def test_overrides_keep_every_other_setting_of_the_index(tmp_path: Path) -> None:
    home = DataHome(tmp_path)
    stored = IndexConfig(search_k=123, query_speeds=(0.9, 1.0), max_false_match=0.02)
    Manifest("abc", "/models/m.pt", 7, FeatureConfig(), stored, 96).save(home.index_dir)
    assert index_config_for(home, max_false_match=0.1) == IndexConfig(search_k=123, query_speeds=(0.9, 1.0),
                                                                      max_false_match=0.1)
    assert index_config_for(str(tmp_path), query_speeds=(1.0, 1.1)) == IndexConfig(
        search_k=123, query_speeds=(1.0, 1.1), max_false_match=0.02)
