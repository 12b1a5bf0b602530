"""Gather the voices the fingerprint model hears as speech babble in training.

Babble (several people talking over the music) is made from a bank of
speech (:func:`audiosim.training.data.load_speech_bank`); the more
different voices it holds, the less the model learns one speaker's voice
instead of speech. This script writes WAV files of every voice below into
one folder, for ``audiosim train --speech DIR``:

- recorded prompts of Debian's Asterisk voice packages that ship as raw
  GSM (``asterisk-prompt-es-co``: Colombian Spanish; ``asterisk-prompt-fr-armelle``:
  French), converted with sox (libsndfile does not read raw GSM); the
  packages that ship WAV (``asterisk-core-sounds-en-wav``, ``-fr-wav``,
  ``-it-wav``, ``asterisk-prompt-it-menardi-wav``) are given to
  ``--speech`` as they are;
- synthetic voices of Debian's festival packages (:data:`FESTIVAL`: four
  men and one woman) reading the licence texts of ``/usr/share/common-licenses``,
  each voice another text.

Validation (``es_MX`` prompts) and the unseen-catalogue benchmark
(``ru_RU`` prompts, KLettres speakers) use other voices; none of them is
written here. Install what it needs, then run it::

    apt-get install sox festival festvox-kallpc16k festvox-kdlpc16k festvox-itapc16k \\
        festvox-suopuhe-mv festvox-us-slt-hts asterisk-prompt-es-co asterisk-prompt-fr-armelle
    python scripts/make_voices.py --out VOICES_DIR
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tqdm.auto import tqdm

GSM_PROMPTS = {"es_CO": "asterisk-prompt-es-co", "fr_armelle": "asterisk-prompt-fr-armelle"}
"""Voice name -> the Debian package of its raw-GSM prompts (their files are
found with ``dpkg -L``: the folders are shared with other packages)."""

FESTIVAL = {
    "kal_diphone": "GPL-3",
    "ked_diphone": "LGPL-3",
    "pc_diphone": "GPL-2",
    "hy_fi_mv_diphone": "MPL-2.0",
    "cmu_us_slt_arctic_hts": "GFDL-1.3",
}
"""Festival voice -> the licence text (``/usr/share/common-licenses``) it reads."""

TEXT_CHARS = 12000
"""Characters of text per synthetic voice: about 13 minutes of speech."""


def package_files(package: str, suffix: str) -> list[Path]:
    """The files of an installed Debian package that end with ``suffix``."""
    listed = subprocess.run(["dpkg", "-L", package], check=True, capture_output=True, text=True).stdout
    return sorted(Path(line) for line in listed.splitlines() if line.endswith(suffix))


def write_with(command: list[str], target: Path) -> None:
    """Run ``command`` (its ``{out}`` argument replaced by a part file beside
    ``target``), then rename the part file to ``target``: a run killed midway
    leaves no half-written voice that a rerun would keep."""
    part = target.with_suffix(".part" + target.suffix)
    subprocess.run([str(part) if a == "{out}" else a for a in command], check=True, capture_output=True)
    part.replace(target)


def gsm_prompts(name: str, package: str, out: Path) -> int:
    """Convert each ``.gsm`` prompt of ``package`` to ``out/<name>/<folder>_<prompt>.wav``; return how many."""
    files = package_files(package, ".gsm")
    dest = out / name
    dest.mkdir(parents=True, exist_ok=True)
    for f in tqdm(files, desc=name, unit="file"):
        target = dest / f"{f.parent.name}_{f.stem}.wav"
        if not target.is_file():
            write_with(["sox", "-t", "gsm", "-r", "8000", str(f), "{out}"], target)
    return len(files)


def festival_voice(voice: str, licence: str, out: Path) -> Path:
    """``out/festival/<voice>.wav``: the voice reading the start of a licence text."""
    dest = out / "festival" / f"{voice}.wav"
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    text = Path("/usr/share/common-licenses", licence).read_text(errors="replace")[:TEXT_CHARS]
    with tempfile.TemporaryDirectory() as tmp:
        txt = Path(tmp, "text.txt")
        txt.write_text(text)
        write_with(["text2wave", "-eval", f"(voice_{voice})", str(txt), "-o", "{out}"], dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder to write the voices into (reused: "
                    "files already there are kept)")
    args = ap.parse_args(argv)
    missing = [tool for tool in ("sox", "text2wave", "dpkg") if shutil.which(tool) is None]
    missing += [p for p in GSM_PROMPTS.values()
                if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    if missing:
        ap.error(f"missing: {', '.join(missing)}; install the packages named in --help")
    for name, package in GSM_PROMPTS.items():
        print(f"{name}: {gsm_prompts(name, package, args.out)} prompts", file=sys.stderr)
    for voice, licence in tqdm(FESTIVAL.items(), desc="festival voices", unit="voice"):
        try:
            festival_voice(voice, licence, args.out)
        except subprocess.CalledProcessError as e:
            ap.error(f"festival voice {voice} failed (is its festvox package installed?): "
                     f"{e.stderr.decode(errors='replace')[-300:]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
