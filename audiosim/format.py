"""How audiosim writes values for people: one formatter per kind of value.

The CLI's tables, CSV and JSON output, the report's pages and tables and
the flows' artifacts all format through these functions, so one value reads
the same everywhere. This module imports nothing from audiosim: every stage
may use it.
"""

from __future__ import annotations

import math
import re


def duration(seconds: float | None) -> str:
    """``h:mm:ss`` for an hour or more, else ``m:ss``; empty for a missing value.

    Examples
    --------
    >>> duration(75.4), duration(3725), duration(float("nan"))
    ('1:15', '1:02:05', '')
    """
    if seconds is None:
        return ""
    seconds = float(seconds)
    if not math.isfinite(seconds):
        return ""
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*\[\]|~$]|(?<![^\W_])_|_(?![^\W_]))")
_MARKDOWN_BLOCK_START = re.compile(r"^(\s*)([#+\-=]|\d+(?=[.)](\s|$)))")
_HTML_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def markdown_text(text: object) -> str:
    """``text`` as Markdown that renders literally, as one line of plain text.

    Song titles, tags, paths and playlist entries come from files nobody
    checked; written verbatim into Markdown, ``<script>`` would reach an HTML
    renderer as a tag and ``*``, ``_``, ``[``, ``|`` or ``$`` would turn into
    emphasis, links, table cells or maths. HTML metacharacters become entities
    (``&``, ``<``, ``>``), Markdown's inline punctuation is backslash-escaped,
    except ``_`` inside a word (``road_trip``), which cannot start emphasis;
    a start that would open a block (heading, list, setext underline) is
    escaped too, and line breaks become spaces (Markdown renders a single
    line break as a space anyway; in a table cell it would end the table).

    Examples
    --------
    >>> markdown_text("<script>alert(1)</script> *x* | y")
    '&lt;script&gt;alert(1)&lt;/script&gt; \\\\*x\\\\* \\\\| y'
    >>> markdown_text("1. first")
    '1\\\\. first'
    """
    s = re.sub(r"\r\n|\r|\n", " ", str(text))
    s = _MARKDOWN_PUNCTUATION.sub(r"\\\1", s)
    s = "".join(_HTML_ENTITIES.get(ch, ch) for ch in s)
    m = _MARKDOWN_BLOCK_START.match(s)
    if m:
        if m.group(2).isdigit():
            end = m.end()
            s = s[:end] + "\\" + s[end:]
        else:
            s = s[: m.start(2)] + "\\" + s[m.start(2):]
    return s


def markdown_code(text: object) -> str:
    """``text`` as a Markdown code span that renders literally.

    A code span shows its content as it is (renderers escape HTML in it);
    the only way out of one is a run of backticks as long as its fence, so
    the fence is one backtick longer than the longest run in ``text``. Line
    breaks become spaces.

    Examples
    --------
    >>> markdown_code("data/home"), markdown_code("a`b")
    ('`data/home`', '``a`b``')
    """
    s = re.sub(r"\r\n|\r|\n", " ", str(text))
    longest = max((len(run) for run in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a CSV cell as a formula."""
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: object) -> object:
    """A CSV cell that a spreadsheet cannot read as a formula.

    Spreadsheets evaluate a cell beginning with ``=``, ``+``, ``-`` or ``@``
    (and, in some, a tab or carriage return) as a formula, so a song tagged
    ``=HYPERLINK(...)`` would run when the CSV is opened. Such text gets a
    leading ``'``, which spreadsheets read as "text follows". Numbers stay
    numbers, and text that is just a number (``"-3.5"``) stays as it is:
    a negative number is not a formula.

    Examples
    --------
    >>> csv_cell('=HYPERLINK("http://x")'), csv_cell(-3.5), csv_cell("-3.5"), csv_cell("calm")
    ('\\'=HYPERLINK("http://x")', -3.5, '-3.5', 'calm')
    """
    if isinstance(value, str) and value.startswith(CSV_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value
