"""Typed configuration: settings a person types are checked against the
declared type of their field before any work starts."""

from __future__ import annotations

import pytest

from audiosim.config import AugmentConfig, IndexConfig


def test_with_fields_changes_only_the_fields_named() -> None:
    cfg = IndexConfig().with_fields({"search_k": 1000, "query_speeds": [0.98, 1.0, 1.02]})
    assert cfg.search_k == 1000 and cfg.query_speeds == (0.98, 1.0, 1.02)
    assert cfg == IndexConfig(search_k=1000, query_speeds=(0.98, 1.0, 1.02))


def test_a_whole_number_fits_a_number_field() -> None:
    assert AugmentConfig().with_fields({"p_babble": 1}).p_babble == 1


@pytest.mark.parametrize("changes, says", [
    ({"search_k": 10.5}, "search_k=10.5: expected a whole number"),
    ({"search_k": True}, "expected a whole number"),
    ({"search_k_shared": 1}, "expected true or false"),
    ({"metric": 3}, "expected a string"),
    ({"query_speeds": []}, "expected a list of numbers"),
    ({"query_speeds": 1.0}, "expected a list of numbers"),
    ({"seach_k": 10}, "seach_k: no IndexConfig field"),
])
def test_a_value_that_does_not_fit_its_field_is_refused_naming_it(changes, says) -> None:
    with pytest.raises(ValueError, match=says):
        IndexConfig().with_fields(changes)


def test_a_range_needs_exactly_two_numbers() -> None:
    with pytest.raises(ValueError, match=r"snr_db=\[1, 2, 3\]: expected a list of 2 numbers, like \[0.0, 20.0\]"):
        AugmentConfig().with_fields({"snr_db": [1, 2, 3]})
