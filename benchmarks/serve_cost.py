"""What the page costs: `python -m benchmarks.serve_cost [--runs 5] [--conversions 20] [--out results.json]`.

1. One conversion through the page against the same conversion's compute in the CLI (samples/neutral_actor23
   to angry_actor24 at strength 0.5):
   - the CLI: `ainn convert SRC REF -o tmp.wav --strength 0.5 --json` in a fresh process; its compute is what
     it prints, rtf x seconds (`Pipeline.convert`'s own timing);
   - the page: `ainn serve --port 0` in another process, the pair uploaded once, then a conversion timed as the
     page runs it: from the Convert request, through the long-polled status, to the output wav received and
     playable (this includes the wav's encoding; the source's and reference's pictures of mel and F0 were drawn
     at upload, and the output's, asked for next, is timed apart).
   The two run in turns (CLI, page, CLI, page, ...) so that a busy machine slows them alike; medians compared.
   Also compared: the CLI's compute in a warm process (a folder of copies of the source, the first file left
   out), and the pipeline's own compute inside the server (what the page adds to it).
2. Memory: the server's RSS (/proc/PID/status) after its first conversion and after its `conversions`-th,
   the conversions spread over every sample as source and reference (different lengths) and strengths.
3. Start: seconds from launching `ainn serve` to the page answering; the idle server's RSS; the installed size
   of what the `web` extra adds (starlette, uvicorn; anyio and h11 come with huggingface_hub already).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
SOURCE, REFERENCE, STRENGTH = SAMPLES / "neutral_actor23.flac", SAMPLES / "angry_actor24.flac", 0.5
WEB_EXTRA = ("starlette", "uvicorn")


class Page:
    """A running `ainn serve` and the few requests the page makes."""

    def __init__(self) -> None:
        started = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "-m", "ainn_cli", "serve", "--port", "0", "--device", "cpu"],
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.url = line.split()[2].rstrip("/")
        self.request("/api/config")
        self.start_seconds = time.perf_counter() - started

    def request(self, path: str, data: bytes | None = None, json_body: object = None) -> Any:
        body = json.dumps(json_body).encode() if json_body is not None else data
        headers = {"Content-Type": "application/json"} if json_body is not None else {}
        with urllib.request.urlopen(urllib.request.Request(self.url + path, data=body, headers=headers)) as reply:
            return json.loads(reply.read())

    def upload(self, path: Path) -> str:
        return str(self.request(f"/api/upload?name={path.name}", data=path.read_bytes())["id"])


    def convert(self, source: str, reference: str, strength: float) -> tuple[float, float, float]:
        """One conversion as the page runs it: (seconds from request to wav received, the pipeline's own compute
        inside the server, as the result line reports it, and then the seconds to the output's picture)."""
        start = time.perf_counter()
        status = self.request("/api/convert", json_body={"source": source, "reference": reference,
                                                         "strength": strength, "tempo": False})
        while status["state"] in ("queued", "running"):
            status = self.request(f"/api/jobs/{status['id']}?wait=0.5")
        if status["state"] != "done":
            raise RuntimeError(str(status.get("error")))
        with urllib.request.urlopen(f"{self.url}/api/output/{status['id']}") as reply:
            reply.read()
        playable = time.perf_counter()
        self.request(f"/api/picture/{status['id']}")
        converted = status["result"]["converted"]
        return (playable - start, float(converted["rtf"]) * float(converted["seconds"]),
                time.perf_counter() - playable)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(timeout=30)


def cli_compute(out: Path) -> float:
    """Compute seconds `ainn convert` reports for the pair (rtf x seconds), in a fresh process."""
    printed = subprocess.run([sys.executable, "-m", "ainn_cli", "convert", str(SOURCE), str(REFERENCE), "-o", str(out),
                              "--strength", str(STRENGTH), "--json", "--overwrite", "--device", "cpu"],
                             check=True, capture_output=True, text=True).stdout
    result = json.loads(printed)
    return float(result["rtf"]) * float(result["seconds"])


def cli_warm_compute(folder: Path, copies: int) -> list[float]:
    """Compute seconds per file of `ainn convert FOLDER REF` on `copies` copies of the source, the first left out:
    the CLI's compute in a warm process (its folder mode, which bounds the native caches as `ainn serve` does)."""
    sources = folder / "sources"
    sources.mkdir()
    for k in range(copies + 1):
        (sources / f"copy{k:02d}{SOURCE.suffix}").write_bytes(SOURCE.read_bytes())
    printed = subprocess.run([sys.executable, "-m", "ainn_cli", "convert", str(sources), str(REFERENCE), "-o",
                              str(folder / "out"), "--strength", str(STRENGTH), "--json", "--device", "cpu"],
                             check=True, capture_output=True, text=True).stdout
    done = sorted(json.loads(printed)["converted"], key=lambda c: str(c["source"]))
    return [float(c["rtf"]) * float(c["seconds"]) for c in done[1:]]


def cost(page: Page, runs: int) -> dict[str, object]:
    source, reference = page.upload(SOURCE), page.upload(REFERENCE)
    cli, wall, compute, drawn = [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(runs):
            cli.append(cli_compute(Path(folder) / "out.wav"))
            seconds, inside, picture = page.convert(source, reference, STRENGTH)
            wall.append(seconds)
            compute.append(inside)
            drawn.append(picture)
        warm = cli_warm_compute(Path(folder), runs)
    return {"cli_compute_s": cli, "cli_warm_compute_s": warm, "page_wall_s": wall, "server_compute_s": compute,
            "output_picture_s": drawn,
            "page_over_cli": statistics.median(wall) / statistics.median(cli),
            "page_over_cli_warm": statistics.median(wall) / statistics.median(warm),
            "page_over_its_own_compute": statistics.median(wall) / statistics.median(compute)}


def memory(page: Page, conversions: int) -> dict[str, object]:
    samples = sorted(SAMPLES.glob("*.flac"))
    ids = {path: page.upload(path) for path in samples}
    rss = []
    for k in range(conversions):
        source, reference = samples[k % len(samples)], samples[(3 * k + 1) % len(samples)]
        page.convert(ids[source], ids[reference], round(0.25 + 0.75 * (k % 4) / 3, 2))  # and its picture
        rss.append(round(page.rss_mb(), 1))
    return {"rss_mb_per_conversion": rss, "ratio_last_to_first": rss[-1] / rss[0]}


def installed_mb(names: tuple[str, ...]) -> float:
    """Bytes on disk of the installed distributions `names` (their RECORD files), in MB."""
    total = 0
    for name in names:
        for file in metadata.distribution(name).files or []:
            located = Path(str(file.locate()))
            total += located.stat().st_size if located.is_file() else 0
    return total / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="conversions timed in the CLI and through the page")
    parser.add_argument("--conversions", type=int, default=20, help="conversions before the last RSS reading")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    page = Page()
    results: dict[str, object] = {"start_s": round(page.start_seconds, 2), "idle_rss_mb": round(page.rss_mb(), 1),
                                  "web_extra_mb": round(installed_mb(WEB_EXTRA), 2)}
    try:
        results["cost"] = cost(page, args.runs)
    finally:
        page.stop()
    page = Page()  # a fresh server: its memory after its first conversion and after the last
    try:
        results["memory"] = memory(page, args.conversions)
    finally:
        results["exit_code"] = page.stop()
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
