"""The README's picture of the page: `python -m benchmarks.serve_screenshot [--out docs/serve.png]`.

Starts `ainn serve --port 0` (default model), converts samples/neutral_actor23 towards angry_actor24 at strength
0.5 and reads the reference in the strength view, in Debian's Chromium driven by Playwright (`pip install
playwright`, `apt-get install chromium`), then saves the page as a 128-colour PNG (small enough for the repo).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def shoot(url: str, out: Path, chromium: str) -> None:
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(profile, executable_path=chromium, headless=True,
                                                                args=CHROMIUM_ARGS,
                                                                viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("body[data-ready=yes]")
        page.set_input_files("#source-file", SAMPLES / "neutral_actor23.flac")
        page.set_input_files("#reference-file", SAMPLES / "angry_actor24.flac")
        page.wait_for_function("() => document.querySelector('#reference-name').textContent.includes('·')")
        page.uncheck("#as-reference")
        page.focus("#strength")
        for _ in range(10):
            page.keyboard.press("ArrowLeft")
        page.click("#convert")
        page.wait_for_selector("#result:not([hidden])", timeout=300_000)
        page.set_input_files("#strength-file", SAMPLES / "angry_actor24.flac")
        page.wait_for_selector("#strength-reading .label", timeout=300_000)
        raw = out.with_suffix(".raw.png")
        page.screenshot(path=str(raw), full_page=True)
        context.close()
    Image.open(raw).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    raw.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "serve.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "ainn_cli", "serve", "--port", "0", "--device", "cpu"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[2]
        shoot(url, args.out, args.chromium)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
