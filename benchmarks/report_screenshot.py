"""Screenshot a playlist report with headless chromium, to check it reads well.

Usage::

    python benchmarks/report_screenshot.py REPORT.html OUT.png [--width 1280] [--height 4000]
                                           [--pages N]

Writes ``OUT.png`` (the first ``height`` pixels of the page) and, with
``--pages N``, also ``OUT-2.png`` ... ``OUT-N.png`` for the following
screens (chromium renders one window ``N`` screens tall, which is then
cut). Needs Debian's ``chromium`` package.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def screenshot(html: Path, out: Path, width: int = 1280, height: int = 4000) -> Path:
    """Render ``html`` in headless chromium at ``width`` x ``height`` into ``out`` (PNG)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
                        f"--window-size={width},{height}", html.resolve().as_uri()],
                       check=True, capture_output=True, timeout=180, env={**os.environ, "HOME": profile})
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("html", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=4000)
    p.add_argument("--pages", type=int, default=1, help="cut a page this many screens tall into separate PNGs")
    args = p.parse_args(argv)
    if args.pages <= 1:
        print(screenshot(args.html, args.out, args.width, args.height))
        return 0
    from PIL import Image

    tall = args.out.with_name(args.out.stem + "-full.png")
    screenshot(args.html, tall, args.width, args.height * args.pages)
    img = Image.open(tall)
    for i in range(args.pages):
        part = img.crop((0, i * args.height, args.width, (i + 1) * args.height))
        name = args.out if i == 0 else args.out.with_name(f"{args.out.stem}-{i + 1}{args.out.suffix}")
        part.save(name)
        print(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
