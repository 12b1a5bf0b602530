"""Rows printed for people (a table) or programs (CSV, JSON): the one writer.

Every listing command (``catalog``, ``identify``, ``monitor``, ``similar``,
``moods``) prints through :func:`write_rows`, so that ``--format`` means the
same everywhere: JSON is a list of records (text as UTF-8), CSV has a header
row, and both write timestamps the same way, ISO 8601 in UTC to the
millisecond (``2024-05-01T12:00:00.000Z``, :func:`iso_timestamps`). The
table is pandas' aligned text with one header line (the index, when written,
is its first column) and missing values blank. Table cells may be formatted
for reading (durations as ``m:ss``, scores to three decimals); CSV and JSON
keep the values as they are.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence, TextIO

from audiosim.cli.options import FORMATS

if TYPE_CHECKING:
    import pandas as pd

Format = Literal["table", "csv", "json"]


def write_rows(
    rows: pd.DataFrame | Sequence[Mapping[str, Any]],
    fmt: Format,
    *,
    columns: Sequence[str] | None = None,
    table_formats: Mapping[str, Callable[[Any], str]] | None = None,
    index: bool = False,
    plain_cells: bool = False,
    out: TextIO | None = None,
) -> None:
    """Write rows as an aligned table, CSV or JSON.

    Parameters
    ----------
    rows : DataFrame or sequence of mappings
        The rows; mappings may leave out columns (they are then missing).
    fmt : {"table", "csv", "json"}
    columns : sequence of str, optional
        The columns, in order (default: those of ``rows``).
    table_formats : mapping of column to function, optional
        How the table writes the values of some columns (e.g.
        :func:`duration`); CSV and JSON are not affected.
    index : bool
        Also write the DataFrame's index (e.g. the catalogue's ``id``): as
        the table's first column, CSV's first column, and a field of each
        JSON record.
    plain_cells : bool
        Table only: write every cell as its own value instead of formatting
        numeric columns as a whole. Use it for columns that are blank in some
        rows (identify's unmatched clips), so that the other rows keep their
        values as given (``0.5``, not ``0.500``).
    out : text stream, optional
        Where to write (default: ``sys.stdout`` at the time of the call).
    """
    import pandas as pd  # imported when rows are written: --help does not wait for pandas

    out = sys.stdout if out is None else out
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows), columns=columns)
    if columns is not None:
        df = df[list(columns)]
    if fmt == "json":
        records = iso_timestamps(df.reset_index() if index else df)
        out.write(json.dumps(json.loads(records.to_json(orient="records")), indent=2, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        out.write(iso_timestamps(df).to_csv(index=index))
    elif fmt == "table":
        out.write(_table(df, table_formats or {}, index=index, plain_cells=plain_cells) + "\n")
    else:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")


def iso_timestamps(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its timestamp columns as ISO 8601 text (UTC, milliseconds, ``Z``).

    Naive timestamps are taken as UTC. Missing ones stay missing. The other
    columns are untouched.
    """
    import pandas as pd  # imported when rows are written: --help does not wait for pandas

    columns = [c for c in df.columns if pd.api.types.is_datetime64_any_dtype(df[c])]
    if not columns:
        return df
    out = df.copy()
    for c in columns:
        t = out[c]
        t = t.dt.tz_localize("UTC") if t.dt.tz is None else t.dt.tz_convert("UTC")
        text = t.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
        out[c] = text.where(t.notna(), None)
    return out


def _table(df: pd.DataFrame, formats: Mapping[str, Callable[[Any], str]], *, index: bool, plain_cells: bool) -> str:
    """Every row and column in full (``to_string`` ignores pandas' display limits), one header line."""
    view = df.reset_index() if index else df.copy()
    for column, format_value in formats.items():
        view[column] = view[column].map(format_value)
    if plain_cells:
        view = view.astype(object).where(view.notna(), "")
    return view.to_string(index=False, na_rep="")

