"""The data home: one folder holding everything audiosim makes.

::

    catalog.sqlite      the catalogue of tracks (see :mod:`audiosim.store.catalog`)
    features/           log-mel features by content hash, plus config.json
    index/              Annoy shards, id maps, manifest.json
    reports/            HTML/CSV reports
    cache/              anything that can be rebuilt

It is resolved once, at the edge (the CLI, a flow's parameters), with
:meth:`DataHome.resolve`: ``--home``, else ``$AUDIOSIM_HOME``, else ``./data``.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

from audiosim.config import default_home


@dataclass(frozen=True)
class DataHome:
    """Paths of a data home (nothing is created until :meth:`create`).

    Parameters
    ----------
    root : str or Path
        The data home folder.

    Examples
    --------
    >>> home = DataHome("data")
    >>> home.catalog_path
    PosixPath('data/catalog.sqlite')
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def resolve(cls, home: "str | Path | DataHome | None" = None) -> "DataHome":
        """The data home for ``home``, or ``$AUDIOSIM_HOME``, or ``./data``."""
        if isinstance(home, DataHome):
            return home
        return cls(Path(home) if home is not None else default_home())

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.sqlite"

    @property
    def features_dir(self) -> Path:
        return self.root / "features"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def create(self) -> "DataHome":
        """Create the home and its folders if missing; returns ``self``.

        Raises
        ------
        NotADirectoryError
            If ``root`` (or one of its folders) exists and is not a folder.
        """
        for d in (self.root, self.features_dir, self.index_dir, self.reports_dir, self.cache_dir):
            if d.exists() and not d.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "data home path exists and is not a folder", str(d))
            d.mkdir(parents=True, exist_ok=True)
        return self


