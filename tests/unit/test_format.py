"""Values written for people and for other programs: Markdown and CSV text that stays inert."""

from __future__ import annotations

import pytest

from audiosim.format import csv_cell, markdown_code, markdown_text


@pytest.mark.parametrize("text, expected", [
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("a & b", "a &amp; b"),
    ("*bold* _it_ `code` [x](y) a|b ~s~ $m$ \\", "\\*bold\\* \\_it\\_ \\`code\\` \\[x\\](y) a\\|b \\~s\\~ \\$m\\$ \\\\"),
    ("road_trip", "road_trip"),
    ("# heading", "\\# heading"),
    ("- item", "\\- item"),
    ("1. first", "1\\. first"),
    ("3.14 is pi", "3.14 is pi"),
    ("two\nlines\r\nhere", "two lines here"),
])
def test_markdown_text_renders_literally(text, expected):
    assert markdown_text(text) == expected


def test_markdown_code_fence_outlasts_backticks_in_the_text():
    assert markdown_code("/data/home") == "`/data/home`"
    assert markdown_code("a``b") == "```a``b```"
    assert markdown_code("`x`") == "`` `x` ``"


@pytest.mark.parametrize("value", ['=HYPERLINK("http://x")', "+cmd", "-cmd", "@SUM(A1)", "\tx", "\rx", "-2+3"])
def test_csv_cell_prefixes_text_a_spreadsheet_would_run(value):
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize("value", [-3.5, -2, 0, "-3.5", "+4", "1e-3", "calm", "", None, True])
def test_csv_cell_leaves_numbers_and_plain_text(value):
    assert csv_cell(value) == value
