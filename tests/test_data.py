"""`ainn data` against a fake download server that the test serves on 127.0.0.1 (as tests/test_hub.py fakes the Hub).

The fake serves small synthetic archives laid out as the real ones (a RAVDESS zip of `Actor_XX/03-01-...wav` at
48 kHz stereo; LibriSpeech tar.gz files of `LibriSpeech/SUBSET/READER/CHAPTER/*.flac` with `*.trans.txt` and
`SPEAKERS.TXT`) with what a static file server says: Content-Length, ETag, Accept-Ranges, and 206 answers to
`Range` (honouring `If-Range`). It can cut a connection after some bytes, to test resuming. The published sizes and
checksums of sources.py are swapped for the synthetic archives' own; the addresses are the real file names under
the fake's base (`--mirror`). Everything is written under tmp_path.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from ainn_cli.audio import SAMPLE_RATE
from ainn_cli.cli import app
from ainn_cli.corpora import archive, download, sources
from tests.conftest import one_line, tone

EMOTION_CODES = {"01": 110.0, "05": 180.0, "03": 220.0, "04": 90.0, "08": 260.0}  # neutral angry happy sad surprise
ACTORS = ("01", "02", "03", "21", "22", "23", "24")  # training actors and default.toml's validation and test actors


def _wav(seconds: float, f0: float, rate: int = 48000, channels: int = 2, seed: int = 0) -> bytes:
    mono = tone(seconds, rate, f0, seed)
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([mono] * channels, axis=1) if channels > 1 else mono, rate, format="WAV")
    return buffer.getvalue()


def ravdess_names(actors: tuple[str, ...] = ACTORS) -> list[str]:
    """Official names: neutral once, each other emotion at both intensities, statement 1, repetition 1."""
    names = []
    for actor in actors:
        for code in EMOTION_CODES:
            for level in ("01",) if code == "01" else ("01", "02"):
                names.append(f"Actor_{actor}/03-01-{code}-{level}-01-01-{actor}.wav")
    return names


def ravdess_zip(names: list[str], extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as handle:
        for k, name in enumerate(names):
            code, actor = name.split("-")[2], name[-6:-4]
            handle.writestr(name, _wav(0.6, EMOTION_CODES[code] * (1 + 0.03 * int(actor)), seed=k))
        for name, data in (extra or {}).items():
            handle.writestr(name, data)
    return buffer.getvalue()


def librispeech_tar(subset: str, readers: dict[str, str], per_reader: int = 2) -> bytes:
    """`LibriSpeech/SUBSET/READER/CHAPTER/READER-CHAPTER-000K.flac`, transcripts, SPEAKERS.TXT (16 kHz mono)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        speakers = "; ID | SEX | SUBSET | MINUTES | NAME\n" + "".join(
            f"{reader:<5}| {sex} | {subset} | 8.0 | Reader {reader}\n" for reader, sex in readers.items())
        add("LibriSpeech/SPEAKERS.TXT", speakers.encode())
        for r, reader in enumerate(readers):
            chapter = f"{100 + r}"
            lines = []
            for k in range(per_reader):
                utt = f"{reader}-{chapter}-{k:04d}"
                buffer_flac = io.BytesIO()
                sf.write(buffer_flac, tone(0.7, 16000, 120 + 20 * r, seed=k), 16000, format="FLAC")
                add(f"LibriSpeech/{subset}/{reader}/{chapter}/{utt}.flac", buffer_flac.getvalue())
                lines.append(f"{utt} WORDS OF READER {reader} LINE {k}")
            add(f"LibriSpeech/{subset}/{reader}/{chapter}/{reader}-{chapter}.trans.txt", "\n".join(lines).encode())
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------- fake server


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class FakeFiles:
    """A threaded HTTP file server on a free port of 127.0.0.1 that logs every request and its Range header."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.log: list[tuple[str, str, str | None]] = []  # (method, path, Range)
        self.cut_after: int | None = None  # the next GET sends only this many body bytes, then closes
        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = _Server(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/files"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def ranges(self) -> list[str | None]:
        return [r for m, _, r in self.log if m == "GET"]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeFiles

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.fake.log.append(("GET", self.path, self.headers.get("Range")))
        name = self.path.removeprefix("/files/").split("?")[0]
        data = self.fake.files.get(name)
        if data is None:
            self._reply(404, b"not found", {})
            return
        etag = f'"{hashlib.md5(data).hexdigest()}"'
        start, status = 0, 200
        wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if wanted and self.headers.get("If-Range") in (None, etag):
            start, status = int(wanted[1]), 206
            if start >= len(data):
                self._reply(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                return
        headers = {"ETag": etag, "Accept-Ranges": "bytes"}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        cut, self.fake.cut_after = self.fake.cut_after, None
        self._reply(status, body, headers, cut)

    def _reply(self, status: int, body: bytes, headers: dict[str, str], cut: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            self.wfile.flush()
            self.close_connection = True


@pytest.fixture()
def server() -> Iterator[FakeFiles]:
    fake = FakeFiles({})
    yield fake
    fake.stop()


def publish(server: FakeFiles, monkeypatch: pytest.MonkeyPatch, ravdess: bytes | None = None,
            libri: dict[str, bytes] | None = None) -> None:
    """Serve the archives under their official file names; sources.py's sizes and checksums become theirs."""
    if ravdess is not None:
        server.files[sources.RAVDESS.filename] = ravdess
        monkeypatch.setattr(sources, "RAVDESS", sources.Archive(
            name="RAVDESS speech", url=sources.RAVDESS.url, size=len(ravdess), md5=hashlib.md5(ravdess).hexdigest()))
        monkeypatch.setattr("ainn_cli.commands.data.RAVDESS", sources.RAVDESS)
    for subset, data in (libri or {}).items():
        server.files[f"{subset}.tar.gz"] = data
        monkeypatch.setitem(sources.LIBRISPEECH_SHA256, subset, hashlib.sha256(data).hexdigest())
        monkeypatch.setitem(sources.LIBRISPEECH_KNOWN, subset, (len(data), hashlib.md5(data).hexdigest()))
    monkeypatch.setenv(sources.MIRROR_ENV, server.url)
    monkeypatch.setattr(download, "RETRY_PAUSE", 0.0)


def invoke(*args: object) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def rows(file: Path) -> list[dict[str, str]]:
    with open(file, newline="") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------------------------- tests


def test_the_real_addresses_and_checksums_are_in_the_code() -> None:
    assert sources.RAVDESS.url.startswith("https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip")
    assert sources.RAVDESS.filename == "Audio_Speech_Actors_01-24.zip" and sources.RAVDESS.size == 208_468_073
    dev = sources.librispeech("dev-clean")
    assert dev.url == "https://www.openslr.org/resources/12/dev-clean.tar.gz" and dev.size == 337_926_286
    assert dev.sha256 is not None and len(dev.sha256) == 64 and dev.md5 == "42e2234ba48799c1f50f24a7926300a1"
    assert sources.Archive("x", "https://a.b/c/d.zip?download=1").mirrored("http://m/x/").url == "http://m/x/d.zip"


def test_ravdess_is_downloaded_converted_and_listed(server: FakeFiles, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    names = ravdess_names(("01", "02"))
    publish(server, monkeypatch, ravdess=ravdess_zip(names, {"Actor_01/notes.txt": b"not speech",
                                                             "Actor_01/03-02-01-01-01-01-01.wav": b"song, not speech"}))
    folder = tmp_path / "ravdess"
    result = invoke("data", "ravdess", folder)
    assert result.exit_code == 0, result.output
    listed = rows(folder / "manifest.csv")
    assert list(listed[0]) == ["path", "actor", "gender", "emotion", "intensity", "statement", "repetition", "text",
                               "duration_s"]  # the columns of the development tree's RAVDESS manifest
    assert len(listed) == len(names) and {r["actor"] for r in listed} == {"01", "02"}
    first = next(r for r in listed if r["path"] == "Actor_01/03-01-05-02-01-01-01.flac")
    assert (first["gender"], first["emotion"], first["intensity"]) == ("male", "angry", "strong")
    assert first["text"] == "Kids are talking by the door." and abs(float(first["duration_s"]) - 0.6) < 0.01
    info = sf.info(str(folder / first["path"]))
    assert (info.samplerate, info.channels, info.format, info.subtype) == (SAMPLE_RATE, 1, "FLAC", "PCM_16")
    assert not (folder / ".download").exists()  # the archive is removed once converted
    assert "zenodo" not in (folder / "SOURCE.md").read_text() or "CC BY-NC-SA" in (folder / "SOURCE.md").read_text()
    lines = [line for line in result.stderr.splitlines() if line.startswith("converting ")]
    assert len(lines) == len(names) and lines[0].startswith(f"converting 1/{len(names)} Actor_01/")
    assert f"{len(names)} recordings ({len(names)} converted now, 0 kept)" in result.stdout


def test_a_cut_download_resumes_with_a_range_request(server: FakeFiles, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    data = ravdess_zip(ravdess_names(("01",)))
    publish(server, monkeypatch, ravdess=data)
    monkeypatch.setattr(download, "ATTEMPTS", 1)
    server.cut_after = len(data) // 3
    folder = tmp_path / "ravdess"
    cut = invoke("data", "ravdess", folder, "--keep-archive")
    assert cut.exit_code == 1 and "Traceback" not in cut.output
    assert cut.stderr.splitlines()[0].startswith("downloading Audio_Speech_Actors_01-24.zip 0.")  # progress in a log
    assert "connection closed at byte" in cut.stderr and "run the same command again to resume" in cut.stderr
    part = folder / ".download" / "Audio_Speech_Actors_01-24.zip.part"
    assert part.stat().st_size == len(data) // 3
    result = invoke("data", "ravdess", folder, "--keep-archive")
    assert result.exit_code == 0, result.output
    assert server.ranges() == [None, f"bytes={len(data) // 3}-"]  # the second run asked only for the rest
    assert (folder / ".download" / "Audio_Speech_Actors_01-24.zip").read_bytes() == data
    again = invoke("data", "ravdess", folder)  # everything there: nothing fetched, nothing converted
    assert again.exit_code == 0 and "(0 converted now, 9 kept)" in again.stdout and len(server.ranges()) == 2
    assert not (folder / ".download").exists()


def test_a_download_cut_twice_in_one_run_retries_and_resumes(server: FakeFiles, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    data = ravdess_zip(ravdess_names(("01",)))
    publish(server, monkeypatch, ravdess=data)
    server.cut_after = 1000
    result = invoke("data", "ravdess", tmp_path / "r")
    assert result.exit_code == 0, result.output
    assert server.ranges() == [None, "bytes=1000-"]


def test_a_wrong_checksum_is_refused_and_nothing_is_converted(server: FakeFiles, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    data = ravdess_zip(ravdess_names(("01",)))
    publish(server, monkeypatch, ravdess=data)
    server.files[sources.RAVDESS.filename] = data[:-1] + bytes([data[-1] ^ 1])  # same size, one bit changed
    folder = tmp_path / "ravdess"
    one_line(invoke("data", "ravdess", folder, "-q"), 1, "md5", "the download was removed")
    assert not list(folder.rglob("*.flac")) and not list((folder / ".download").iterdir())


def test_a_wrong_size_is_refused_before_a_byte_is_written(server: FakeFiles, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    publish(server, monkeypatch, ravdess=ravdess_zip(ravdess_names(("01",))))
    server.files[sources.RAVDESS.filename] += b"more"
    one_line(invoke("data", "ravdess", tmp_path / "r", "-q"), 1, "the server offers")
    assert not (tmp_path / "r" / ".download" / "Audio_Speech_Actors_01-24.zip.part").exists()


@pytest.mark.parametrize("member", ["../evil/03-01-01-01-01-01-01.wav", "/etc/03-01-01-01-01-01-01.wav",
                                    "Actor_01\\..\\03-01-01-01-01-01-01.wav"])
def test_an_archive_member_outside_its_folder_is_refused(member: str, server: FakeFiles, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    publish(server, monkeypatch, ravdess=ravdess_zip(ravdess_names(("01",)), {member: _wav(0.5, 100)}))
    one_line(invoke("data", "ravdess", tmp_path / "r", "-q"), 1, "not an official archive")
    assert not list(tmp_path.rglob("*.flac")) and not (tmp_path / "evil").exists()


def test_links_and_oversized_members_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    linked = tmp_path / "linked.tar"
    with tarfile.open(linked, "w") as tar:
        info = tarfile.TarInfo("LibriSpeech/dev-clean/1/2/1-2-0000.flac")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(Exception, match="link or a device"):
        list(archive.members(linked))
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("Actor_01/03-01-01-01-01-01-01.wav", b"\0" * 5000)  # inflates far beyond its packed size
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 4096)
    with pytest.raises(Exception, match="more than 0 MiB"):
        list(archive.members(big))


def test_librispeech_subsets_share_a_folder_with_transcripts_and_genders(server: FakeFiles, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    publish(server, monkeypatch, libri={"dev-clean": librispeech_tar("dev-clean", {"84": "F", "174": "M"}),
                                        "test-clean": librispeech_tar("test-clean", {"61": "M"})})
    folder = tmp_path / "librispeech"
    assert invoke("data", "librispeech", folder, "--subset", "dev-clean").exit_code == 0
    result = invoke("data", "librispeech", folder, "--subset", "test-clean", "--quiet")
    assert result.exit_code == 0 and not result.stderr, result.output
    listed = rows(folder / "manifest.csv")
    assert list(listed[0]) == ["path", "speaker", "gender", "utt_id", "duration_s", "text", "subset", "chapter",
                               "source_path"]  # the development tree's LibriSpeech manifest columns
    assert sorted({(r["speaker"], r["gender"], r["subset"]) for r in listed}) == [
        ("174", "male", "dev-clean"), ("61", "male", "test-clean"), ("84", "female", "dev-clean")]
    row = next(r for r in listed if r["utt_id"] == "84-100-0001")
    assert row["path"] == "84/84-100-0001.flac" and row["text"] == "WORDS OF READER 84 LINE 1"
    assert sf.info(str(folder / row["path"])).samplerate == SAMPLE_RATE


def test_an_unknown_subset_and_a_bad_mirror_are_usage_errors(tmp_path: Path) -> None:
    one_line(invoke("data", "librispeech", tmp_path, "--subset", "dev-noisy"), 2, "--subset 'dev-noisy'")
    one_line(invoke("data", "ravdess", tmp_path, "--mirror", "ftp://x"), 2, "--mirror")


QUICK = ["model.recognizer.channels=16", "model.recognizer.layers=1", "model.content_encoder.channels=16",
         "model.content_encoder.layers=1", "model.emotion_encoder.channels=16", "model.emotion_encoder.layers=1",
         "model.generator.channels=16", "model.generator.layers=1", "data.batch_size=4", "data.segment_frames=32",
         "data.workers=0", "val_batches=1", "log_every=5"]  # a tiny model: the quick-start's commands, but fast
QUICKSTART = "<!-- quickstart -->"


def readme_quickstart() -> list[list[str]]:
    """The README's quick-start: the `ainn` lines of the code block after its marker, split into arguments."""
    import shlex

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = text.split(QUICKSTART, 1)[1].split("```", 2)[1]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()[1:]]
    return [shlex.split(line)[1:] for line in lines if line.startswith("ainn ")]


@pytest.mark.slow
def test_the_readme_quickstart_downloads_trains_and_converts(server: FakeFiles, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh clone with nothing beside it: the README's data command fetches RAVDESS (from the fake), its
    training quick-start trains a few steps on it (here a tiny model) and the bundle converts a sample."""
    publish(server, monkeypatch, ravdess=ravdess_zip(ravdess_names()))
    repo = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(tmp_path)  # ./data, runs/ and the feature cache land in tmp_path
    (tmp_path / "configs").symlink_to(repo / "configs")
    (tmp_path / "samples").mkdir()  # the README's sample, cut to 1.2 s: the same command, a third of the vocoding
    data, rate = sf.read(repo / "samples" / "neutral_actor23.flac", dtype="float32")
    sf.write(tmp_path / "samples" / "neutral_actor23.flac", data[: int(1.2 * rate)], rate)
    monkeypatch.delenv("AINN_DATA", raising=False)
    commands = readme_quickstart()
    assert [c[0] for c in commands] == ["data", "train", "convert"], commands
    for args in commands:
        if args[0] == "train":
            args = [*args, *[x for s in QUICK for x in ("--set", s)], "--device", "cpu"]
        result = invoke(*args)
        assert result.exit_code == 0, (args, result.output)
        if args[0] == "train":
            assert any(line.startswith("stage1 ") and " left" in line for line in result.stderr.splitlines())
            assert any(line.startswith("features ") for line in result.stderr.splitlines())
    assert len(list((tmp_path / "data" / "ravdess").rglob("*.flac"))) == len(ravdess_names())
    outputs = [p for p in tmp_path.glob("*.wav")]
    assert len(outputs) == 1 and sf.info(str(outputs[0])).samplerate == SAMPLE_RATE


def test_config_sources_lie_under_the_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ainn_cli.train.config import DataConfig, resolve_sources

    for root in ("env", "given", "data"):
        (tmp_path / root / "ravdess").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AINN_DATA", str(tmp_path / "env"))
    assert resolve_sources(DataConfig()) == (f"ravdess:{tmp_path / 'env' / 'ravdess'}",)
    assert resolve_sources(DataConfig(root=str(tmp_path / "given"))) == (f"ravdess:{tmp_path / 'given' / 'ravdess'}",)
    assert resolve_sources(DataConfig(sources=("manifest:/abs/m.csv",))) == ("manifest:/abs/m.csv",)
    monkeypatch.delenv("AINN_DATA")
    assert resolve_sources(DataConfig()) == ("ravdess:data/ravdess",)


def test_training_without_the_data_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AINN_DATA", raising=False)
    config = Path(__file__).resolve().parent.parent / "configs" / "default.toml"
    line = one_line(invoke("train", "--config", config, "--out", tmp_path / "run"), 2, "ainn data ravdess")
    assert f"{tmp_path / 'data' / 'ravdess'} does not exist" in line and not (tmp_path / "run").exists()
