"""Assign the dev corpus's soundtracks to training, validation, the background bank and the benchmark.

The first model was trained on 14 soundtracks, split by track
(``models/fingerprint.split.json`` of that model: ``--previous``). The
larger corpus adds 53 soundtracks; whole soundtracks go to one role each, so
the unseen-catalogue benchmark and the background bank hold music by
composers the model never heard:

- ``train``: the previous training tracks plus the soundtracks of
  :data:`TRAIN`;
- ``validation``: the previous validation tracks (held out by track);
- ``bank``: :data:`BANK`, whose clips become the background bank shipped with
  the model (``scripts/make_background.py``);
- ``catalogue`` and ``absent``: :data:`CATALOGUE` and :data:`ABSENT`, the
  unseen-catalogue benchmark's catalogue (with the validation tracks) and its
  absent music (``benchmarks/identify.py --unseen``).

Writes a JSON file of those roles (names, content hashes, soundtracks) that
``audiosim train --split`` and the benchmark read::

    python scripts/split_dev_corpus.py dev-corpus.txt --previous models/fingerprint.split.json \
        --out models/dev-corpus.roles.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from audiosim.store.atomic import atomic_write_text
from audiosim.training.data import read_split, track_refs

CATALOGUE = ("naev", "blobwars", "marsshooter", "unknown-horizons", "trackballs", "starfighter")
ABSENT = ("supertuxkart", "flare", "redeclipse", "openclonk")
BANK = ("enigma", "zaz", "dink", "wordwarvi", "ardentryst", "freecol", "adonthell", "btanks",
        "frozen-bubble", "freeorion", "noiz2sa", "neverball")
TRAIN = ("ufoai", "0ad")
"""New soundtracks trained on; the remaining small ones (under 10 minutes each) train too."""


def soundtrack(path: str | Path) -> str:
    """The soundtrack a Debian-packaged track belongs to: ``/usr/share/games/<game>/``,
    ``/usr/share/scummvm/<game>/`` or ``/usr/share/<package>/``, else the parent folder."""
    parts = Path(path).parts
    if len(parts) > 4 and parts[1:3] == ("usr", "share"):
        return parts[4] if parts[3] in ("games", "scummvm") and len(parts) > 5 else parts[3]
    return Path(path).parent.name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path, help="the corpus list (../shared/corpus/dev-corpus.sh > LIST)")
    ap.add_argument("--previous", type=Path, required=True, help="the previous model's split file")
    ap.add_argument("--out", type=Path, required=True, help="roles file to write")
    args = ap.parse_args(argv)
    paths = [p for p in args.corpus.read_text().splitlines() if p.strip()]
    old_train, old_val = read_split(args.previous)
    roles: dict[str, list[dict]] = {k: [] for k in ("train", "validation", "bank", "catalogue", "absent")}
    for ref in track_refs(paths):
        st = soundtrack(ref.path)
        if ref.content_hash in old_train:
            role = "train"
        elif ref.content_hash in old_val:
            role = "validation"
        elif st in CATALOGUE:
            role = "catalogue"
        elif st in ABSENT:
            role = "absent"
        elif st in BANK:
            role = "bank"
        else:
            role = "train"
        roles[role].append({"name": ref.name, "content_hash": ref.content_hash, "soundtrack": st, "path": ref.path})
    seen: set[str] = set()
    for role in roles:  # a file packaged twice keeps its first role only
        roles[role] = [r for r in roles[role] if not (r["content_hash"] in seen or seen.add(r["content_hash"]))]
    atomic_write_text(args.out, json.dumps(roles, indent=1) + "\n")
    for role, rows in roles.items():
        print(f"{role:10s} {len(rows):4d} tracks, {len({r['soundtrack'] for r in rows}):3d} soundtracks", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
