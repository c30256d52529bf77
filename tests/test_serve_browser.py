"""`ainn serve` in a real browser: Debian's Chromium driven by Playwright, the default model and the shipped samples.

`ainn serve` runs as a user starts it. The page converts the sample pair with the slider moved; its output
<audio> holds a wav of the conversion's length (the library's samples); the strength view reads the
reference's category; a second tab works meanwhile; hostile uploads get messages on the page and leave no
file behind; nothing is fetched from another host; SIGTERM stops the server and its files go. Skips, saying
why, where Playwright or Chromium is missing; AINN_REQUIRE_BROWSER=1 (CI's serve step) makes that a failure.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from ainn_cli.audio import REFERENCE_MAX_SECONDS, SAMPLE_RATE, read_audio
from ainn_cli.pipeline import Pipeline, load_pipeline
from tests.conftest import REPO, SAMPLES
from tests.test_serve_support import long_wav, spooled, web_libraries

CHROMIUM = os.environ.get("AINN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
                 "--use-fake-device-for-media-stream"]
SOURCE, REFERENCE = SAMPLES / "neutral_actor23.flac", SAMPLES / "angry_actor24.flac"
WAIT_MS = 180_000  # a conversion on a busy two-core machine


def _cannot_run(reason: str) -> None:
    if os.environ.get("AINN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"the browser test must run here (AINN_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(reason, allow_module_level=True)


web_libraries()
pytestmark = pytest.mark.slow  # subprocesses and a browser: over 5 s each
try:
    from playwright.sync_api import Page, sync_playwright
except ImportError:
    _cannot_run("Playwright is not installed (pip install playwright; it drives Debian's Chromium)")
if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and not shutil.which(CHROMIUM):
    _cannot_run(f"Chromium is not at {CHROMIUM} (apt-get install chromium chromium-driver, or set AINN_CHROMIUM)")


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return load_pipeline(device="cpu")


@dataclass
class Served:
    """`ainn serve` as a user starts it (default model), with its own TMPDIR so that its files can be seen."""

    url: str
    tmp: Path

    @property
    def spool(self) -> Path:
        """The folder the server receives uploads in (its only one under TMPDIR)."""
        folders = list(self.tmp.glob("ainn-serve-*"))
        assert len(folders) == 1, folders
        return folders[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("serve-tmp")
    process = subprocess.Popen([sys.executable, "-m", "ainn_cli", "serve", "--port", "0", "--device", "cpu"],
                               cwd=REPO, env={**os.environ, "TMPDIR": str(tmp)}, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("ainn serve: http://127.0.0.1:"), line
        yield Served(url=line.split()[2].rstrip("/"), tmp=tmp)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0 and "Traceback" not in err, err
        assert list(tmp.iterdir()) == []  # its temporary files went with it
    finally:
        process.kill()


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[Any]:
    """A fresh headless Chromium profile (its own user-data-dir) with nothing from outside allowed."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1100, "height": 900})
        try:
            yield context
        finally:
            context.close()


def open_page(context: Any, server: Served, requests: list[str]) -> Page:
    page: Page = context.new_page()
    page.on("request", lambda request: requests.append(request.url))
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready=yes]")
    return page


def audio_bytes(page: Page, selector: str) -> bytes:
    """The bytes behind an <audio> element's src (a blob: URL made by the page)."""
    encoded = page.evaluate("""async (selector) => {
        const data = new Uint8Array(await (await fetch(document.querySelector(selector).src)).arrayBuffer());
        let text = "";
        for (let i = 0; i < data.length; i += 32768) text += String.fromCharCode(...data.subarray(i, i + 32768));
        return btoa(text); }""", selector)
    return base64.b64decode(encoded)


def test_the_page_converts_the_samples_and_reads_strength(browser: Any, server: Served, pipe: Pipeline,
                                                          tmp_path: Path) -> None:
    requests: list[str] = []
    page = open_page(browser, server, requests)
    page.set_input_files("#source-file", SOURCE)
    page.set_input_files("#reference-file", REFERENCE)
    # the two uploads run side by side and may finish in either order
    for box, name in (("reference", "angry_actor24.flac"), ("source", "neutral_actor23.flac")):
        page.wait_for_function(f"() => document.querySelector('#{box}-name').textContent.includes('{name} ·')")
    page.uncheck("#as-reference")
    page.focus("#strength")
    for _ in range(10):  # 1.0 down to 0.5 in steps of 0.05, as a person moves it with the keys
        page.keyboard.press("ArrowLeft")
    assert page.input_value("#strength") == "0.5" and page.inner_text("#strength-value") == "0.50"
    page.click("#convert")
    page.wait_for_selector("#progress:not([hidden])")  # progress while it converts
    page.wait_for_selector("#result:not([hidden])", timeout=WAIT_MS)
    assert page.inner_text("#message") == ""

    expected = pipe.convert(read_audio(SOURCE), read_audio(REFERENCE, max_seconds=REFERENCE_MAX_SECONDS), 0.5)
    wave, rate = sf.read(io.BytesIO(audio_bytes(page, "#output-player")), dtype="float32")
    assert rate == SAMPLE_RATE and len(wave) == len(expected.wave)
    np.testing.assert_allclose(wave, np.clip(expected.wave, -0.999, 0.999), atol=3 / 32768)
    page.wait_for_function("() => document.querySelector('#output-player').readyState >= 1")
    duration = page.evaluate("document.querySelector('#output-player').duration")
    assert duration == pytest.approx(len(expected.wave) / SAMPLE_RATE, abs=0.01)
    assert page.get_attribute("#download", "download") == "neutral_actor23-angry_actor24.wav"
    assert expected.reference is not None
    label = expected.reference.label
    assert page.text_content("#reference-reading .label") == label
    assert page.inner_text("#sentence").startswith(f"neutral_actor23-angry_actor24.wav: {expected.emotion} at "
                                                   "strength 0.5")
    page.wait_for_function("() => document.querySelectorAll('#pictures canvas').length === 3")  # source, ref, out

    page.set_input_files("#strength-file", REFERENCE)
    page.wait_for_selector("#strength-reading .label", timeout=WAIT_MS)
    read = pipe.strength(read_audio(REFERENCE))  # what `ainn strength` says of it
    assert page.text_content("#strength-reading .label") == read.label
    page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)
    assert (tmp_path / "serve.png").stat().st_size > 20_000
    assert [url for url in requests if not url.startswith((server.url + "/", "blob:", "data:"))] == []


def test_a_second_tab_works_while_the_first_converts(browser: Any, server: Served) -> None:
    requests: list[str] = []
    first = open_page(browser, server, requests)
    first.set_input_files("#source-file", SOURCE)
    first.check("input[name=reference-mode][value=emotion]")
    first.select_option("#emotion", "sad")
    first.wait_for_function("() => document.querySelector('#source-name').textContent.includes('·')")
    first.click("#convert")
    second = open_page(browser, server, requests)  # loads while the first tab's conversion runs or waits
    second.set_input_files("#strength-file", REFERENCE)
    second.wait_for_selector("#strength-reading .label", timeout=WAIT_MS)
    first.wait_for_selector("#result:not([hidden])", timeout=WAIT_MS)
    assert first.inner_text("#numbers").split("\n")[1] == "sad"
    assert first.inner_text("#reference-reading") == "no reference: the model's prototype emotion"


def test_hostile_uploads_get_a_message_on_the_page_and_leave_nothing(browser: Any, server: Served,
                                                                     tmp_path: Path) -> None:
    requests: list[str] = []
    page = open_page(browser, server, requests)

    def message_for(files: Any, box: str = "source") -> str:
        page.evaluate(f"document.querySelector('#{box}-message').textContent = ''")
        page.set_input_files(f"#{box}-file", files)
        page.wait_for_function(f"() => document.querySelector('#{box}-message').textContent !== ''", timeout=60_000)
        return str(page.inner_text(f"#{box}-message"))

    audio = SOURCE.read_bytes()
    huge = tmp_path / "huge.wav"
    with open(huge, "wb") as handle:
        handle.truncate(2 * 10**9 + 1)  # 2 GB, sparse: the page must refuse it without sending it
    assert message_for({"name": "notes.wav", "mimeType": "audio/wav", "buffer": b"not audio" * 500}).startswith(
        "notes.wav: not a readable audio file")
    assert message_for(huge) == "huge.wav: 2.00 GB is over the page's limit of 210 MB"
    assert message_for(long_wav(tmp_path / "three-hours.wav")) == (
        "three-hours.wav: 3 h 0 min long; the page takes up to 10 min")
    assert message_for({"name": "../../x", "mimeType": "audio/wav", "buffer": b"RIFF junk" * 99},
                       "reference").startswith("x: not a readable audio file")
    assert message_for({"name": "a\x00b.flac", "mimeType": "audio/flac", "buffer": b"\x00" * 999}).startswith(
        "ab.flac: not a readable audio file")
    many = [{"name": f"{k}.flac", "mimeType": "audio/flac", "buffer": audio} for k in range(6)]
    assert message_for(many) == "choose one file at a time (6 were given)"
    assert message_for(many, "strength") == "choose one file at a time (6 were given)"
    page.set_input_files("#source-file", {"name": "../../x", "mimeType": "audio/flac", "buffer": audio})
    page.wait_for_function("() => document.querySelector('#source-name').textContent.startsWith('x ·')")
    assert spooled(server.spool) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.wav", "profile", "three-hours.wav"]
    assert not (tmp_path.parent / "x").exists() and not (tmp_path.parent.parent / "x").exists()
    assert [url for url in requests if not url.startswith((server.url + "/", "blob:", "data:"))] == []


def test_a_recording_from_the_microphone_becomes_the_source(browser: Any, server: Served) -> None:
    """Chromium's fake microphone (a beep) recorded for a second: the page makes a wav of it and uploads it."""
    requests: list[str] = []
    page = open_page(browser, server, requests)
    page.click("#record")
    page.wait_for_function("() => document.querySelector('#record').textContent === 'Stop'")
    page.wait_for_timeout(1500)
    page.click("#record")
    page.wait_for_function("() => document.querySelector('#source-name').textContent.startsWith('recording.wav ·')",
                           timeout=60_000)
    seconds = float(page.inner_text("#source-name").split("·")[1].split()[0])
    assert 1.0 < seconds < 5.0 and page.inner_text("#source-message") == ""
    assert spooled(server.spool) == []
