"""One-step training smoke tests on synthetic audio, from the real config with small overrides."""

from __future__ import annotations

import csv
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import pytest
import soundfile as sf
import torch

from ainn_cli.models.generator import Generator
from ainn_cli.models.recognizer import Recognizer
from ainn_cli.pipeline import load_pipeline
from ainn_cli.train.config import load_config
from ainn_cli.train.data import load_source, split_speakers
from ainn_cli.train.run import train
from tests.conftest import REPO, tone

EMOTIONS = {"neutral": 110.0, "angry": 180.0, "happy": 220.0, "sad": 90.0, "surprise": 260.0}
TINY = [
    "model.recognizer.channels=16", "model.recognizer.layers=1", "model.content_encoder.channels=16",
    "model.content_encoder.layers=1", "model.emotion_encoder.channels=16", "model.emotion_encoder.layers=1",
    "model.generator.channels=16", "model.generator.layers=1", "data.batch_size=6", "data.segment_frames=32",
    "data.workers=0", "val_batches=1", "val_every=1", "log_every=1", "checkpoint_every=1",
    "data.val_speakers=[\"s3\"]", "data.test_speakers=[\"s4\"]",
]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five speakers x five emotions x two clips of synthetic 'speech', listed in a manifest CSV."""
    root = tmp_path_factory.mktemp("corpus")
    rows = []
    for s in range(5):
        for emotion, f0 in EMOTIONS.items():
            for k in range(2):
                path = root / f"s{s}_{emotion}_{k}.wav"
                sf.write(path, tone(0.6, f0=f0 * (1 + 0.05 * s), seed=s * 10 + k), 22050)
                rows.append({"path": path.name, "speaker": f"s{s}", "emotion": emotion,
                             "intensity": "neutral" if emotion == "neutral" else ["normal", "strong"][k],
                             "take": f"s{k}-r1"})  # neutral and emotional clip k: a parallel pair
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "speaker", "emotion", "intensity", "take"])
        writer.writeheader()
        writer.writerows(rows)
    return root / "manifest.csv"


def read_log(file: Path) -> list[dict[str, str]]:
    with open(file, newline="") as handle:
        return list(csv.DictReader(handle))


def config(manifest: Path, tmp_path: Path, *extra: str):  # type: ignore[no-untyped-def]
    overrides = [*TINY, f"data.sources=[\"manifest:{manifest}\"]", f"data.cache_dir=\"{tmp_path / 'cache'}\"", *extra]
    return load_config(REPO / "configs" / "default.toml", overrides)


def test_both_stages_one_step_and_export(manifest: Path, tmp_path: Path) -> None:
    cfg = config(manifest, tmp_path, "stage1.steps=1", "stage2.steps=1")
    run = tmp_path / "run"
    train(cfg, run, export=tmp_path / "bundle", quiet=True)
    split = json.loads((run / "split.json").read_text())
    assert split["val"] == ["s3"] and split["test"] == ["s4"] and "s4" not in split["train"]
    logs = {stage: read_log(run / stage / "log.csv") for stage in ("stage1", "stage2")}
    assert {"rec", "cls", "str", "dis"} <= set(logs["stage1"][0])
    assert {"rec", "cc", "ecc", "esc", "val_acc"} <= set(logs["stage2"][0])
    assert all((run / stage / f).is_file() for stage in ("stage1", "stage2") for f in ("latest.pt", "best.pt"))
    pipe = load_pipeline(str(tmp_path / "bundle"), "cpu")
    assert set(pipe.bundle.info.prototypes) == set(EMOTIONS)
    assert pipe.convert(tone(0.5), tone(0.5, f0=200)).wave.shape == (11025,)


@pytest.mark.slow
def test_prosody_variant_trains_exports_and_converts(manifest: Path, tmp_path: Path) -> None:
    """Both stages of the prosody variant: parallel pairs from the manifest's takes, a prosody predictor
    in the bundle, and a conversion whose length follows the predicted duration."""
    cfg = config(manifest, tmp_path, "stage1.steps=1", "stage2.steps=1", "variant=\"prosody\"")
    run = tmp_path / "run"
    train(cfg, run, export=tmp_path / "bundle", quiet=True)
    logs = {stage: read_log(run / stage / "log.csv") for stage in ("stage1", "stage2")}
    assert {"rec", "str", "dis", "par", "pros"} <= set(logs["stage1"][0]) and "cls" not in logs["stage1"][0]
    assert {"rec", "cc", "ecc", "esc", "ren", "par", "pros"} <= set(logs["stage2"][0])
    assert all(math.isfinite(float(v)) for row in logs["stage2"] for k, v in row.items() if k != "step" and v)
    pipe = load_pipeline(str(tmp_path / "bundle"), "cpu")
    assert pipe.prosody is not None and cast(Generator, pipe.generator).config.prosody_dim == 3
    source = tone(1.0)
    result = pipe.convert(source, tone(0.5, f0=200), strength=1.0)
    assert result.prosody is not None
    assert len(result.wave) == pytest.approx(len(source) * result.prosody.duration, abs=256)
    flat = pipe.convert(source, tone(0.5, f0=200), strength=0.0)
    assert flat.prosody is not None and flat.prosody.pitch_semitones == 0.0 and len(flat.wave) == len(source)


@pytest.mark.slow
def test_reshape_variant_fine_tunes_only_the_generator_on_parallel_takes(manifest: Path, tmp_path: Path) -> None:
    """Stage II of the reshape variant from a Stage I run: env and par from the manifest's parallel takes,
    only G changes, and the bundle keeps a prosody predictor with the paper's generator (DSP reshaping)."""
    base = config(manifest, tmp_path, "stage1.steps=1", "variant=\"reshape\"")
    train(base, tmp_path / "start", stages=("stage1",), quiet=True)
    start = tmp_path / "start" / "stage1" / "latest.pt"
    cfg = config(manifest, tmp_path, "stage2.steps=1", "variant=\"reshape\"",
                 "stage2.lambdas={ rec = 1, env = 1, par = 0.3 }", "model.prosody.gain=[0.5, 1, 1, 1]")
    train(cfg, tmp_path / "run", stages=("stage2",), init=start, export=tmp_path / "bundle", quiet=True)
    row = read_log(tmp_path / "run" / "stage2" / "log.csv")[0]
    assert {"rec", "env", "par"} <= set(row) and math.isfinite(float(row["env"]))
    before = torch.load(start, weights_only=True)["nets"]
    after = torch.load(tmp_path / "run" / "stage2" / "latest.pt", weights_only=True)["nets"]
    shared = [k for k in after if k in before and before[k].shape == after[k].shape]
    assert {k.split(".")[0] for k in shared if not torch.equal(before[k], after[k])} == {"generator"}
    pipe = load_pipeline(str(tmp_path / "bundle"), "cpu")
    assert pipe.prosody is not None and cast(Generator, pipe.generator).config.prosody_dim == 0
    assert pipe.prosody.config.gain == (0.5, 1.0, 1.0, 1.0)  # the config's gain reaches the exported predictor


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.toml")))
def test_every_shipped_config_loads_and_validates(name: str) -> None:
    from ainn_cli.train.config import validate

    validate(load_config(REPO / "configs" / name))


def test_recognizer_stage_trains_only_the_recognizer(manifest: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(config(manifest, tmp_path, "recognizer.steps=2"), run, stages=("recognizer",), quiet=True)
    assert {"cls", "str", "val_acc"} <= set(read_log(run / "recognizer" / "log.csv")[0])
    train(config(manifest, tmp_path, "stage1.steps=1"), tmp_path / "start", stages=("stage1",), quiet=True)
    before = torch.load(tmp_path / "start" / "stage1" / "latest.pt", weights_only=True)["nets"]
    train(config(manifest, tmp_path, "recognizer.steps=1"), tmp_path / "after", stages=("recognizer",),
          init=tmp_path / "start" / "stage1" / "latest.pt", quiet=True)
    after = torch.load(tmp_path / "after" / "recognizer" / "latest.pt", weights_only=True)["nets"]
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"recognizer"}


@pytest.mark.parametrize("variant", ["baseline", "no_cue"])
def test_ablation_variants_train(manifest: Path, tmp_path: Path, variant: str) -> None:
    cfg = config(manifest, tmp_path, "stage1.steps=1", f"variant=\"{variant}\"")
    train(cfg, tmp_path / "run", stages=("stage1",), quiet=True)
    names = set(read_log(tmp_path / "run" / "stage1" / "log.csv")[0])
    assert ("str" in names) == (variant != "baseline")


@pytest.mark.slow
def test_no_cue_variants_save_the_cue_switch_and_convert_as_they_trained(manifest: Path, tmp_path: Path) -> None:
    """The ablations' cue switch is in both encoders' saved configs: the exported bundle's Ec and Ee ignore
    the cue at conversion exactly as in Stage I (a timbre and an embedding that do not move with M)."""
    cfg = config(manifest, tmp_path, "stage1.steps=1", "variant=\"no_cue\"")
    assert not cfg.model.content_encoder.use_cue and not cfg.model.emotion_encoder.use_cue
    train(cfg, tmp_path / "run", stages=("stage1",), export=tmp_path / "bundle", quiet=True)
    saved = json.loads((tmp_path / "bundle" / "content_encoder" / "config.json").read_text())
    assert saved["use_cue"] is False
    pipe = load_pipeline(str(tmp_path / "bundle"), device="cpu")
    mel = torch.randn(1, 80, 40) - 5
    cue_a, cue_b = torch.zeros(1, 40), torch.linspace(0, 1, 40).unsqueeze(0)
    assert torch.equal(pipe.content(mel, cue_a).timbre, pipe.content(mel, cue_b).timbre)
    assert torch.equal(pipe.emotion(mel, cue_a), pipe.emotion(mel, cue_b))


def test_an_explicit_use_cue_wins_over_the_variant(tmp_path: Path) -> None:
    default = REPO / "configs" / "default.toml"
    cfg = load_config(default, ["variant=baseline", "model.content_encoder.use_cue=true"])
    assert cfg.model.content_encoder.use_cue and not cfg.model.emotion_encoder.use_cue
    paper = load_config(default, ["model.emotion_encoder.use_cue=false"])
    assert not paper.model.emotion_encoder.use_cue and paper.model.content_encoder.use_cue


@pytest.mark.slow
def test_resume_continues_exactly(manifest: Path, tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    train(config(manifest, tmp_path, "stage1.steps=3"), straight, stages=("stage1",), quiet=True)
    broken = tmp_path / "broken"
    train(config(manifest, tmp_path, "stage1.steps=2"), broken, stages=("stage1",), quiet=True)
    train(config(manifest, tmp_path, "stage1.steps=3"), broken, stages=("stage1",), resume=True, quiet=True)
    a = torch.load(straight / "stage1" / "latest.pt", weights_only=True)
    b = torch.load(broken / "stage1" / "latest.pt", weights_only=True)
    assert a["step"] == b["step"] == 3
    for key, value in a["nets"].items():
        torch.testing.assert_close(b["nets"][key], value, msg=key)


@pytest.mark.slow
def test_resume_after_a_crash_between_log_and_checkpoint_logs_each_step_once(manifest: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(config(manifest, tmp_path, "stage1.steps=2"), run, stages=("stage1",), quiet=True)
    step2 = (run / "stage1" / "latest.pt").read_bytes()
    train(config(manifest, tmp_path, "stage1.steps=3"), run, stages=("stage1",), resume=True, quiet=True)
    (run / "stage1" / "latest.pt").write_bytes(step2)  # as if killed after logging step 3, before saving it
    train(config(manifest, tmp_path, "stage1.steps=3"), run, stages=("stage1",), resume=True, quiet=True)
    train_rows = [r["step"] for r in read_log(run / "stage1" / "log.csv") if r["rec"]]
    val_rows = [r["step"] for r in read_log(run / "stage1" / "log.csv") if r["val_total"]]
    assert train_rows == val_rows == ["1", "2", "3"]


@pytest.mark.slow
def test_existing_run_needs_resume(manifest: Path, tmp_path: Path) -> None:
    from ainn_cli.errors import UsageError

    cfg = config(manifest, tmp_path, "stage1.steps=1")
    train(cfg, tmp_path / "run", stages=("stage1",), quiet=True)
    with pytest.raises(UsageError, match="--resume"):
        train(cfg, tmp_path / "run", stages=("stage1",), quiet=True)


def test_layouts_and_speaker_split(tmp_path: Path) -> None:
    for speaker in ("0011", "0012", "0013"):
        for emotion in ("Neutral", "Angry"):
            folder = tmp_path / "esd" / speaker / emotion
            folder.mkdir(parents=True)
            sf.write(folder / f"{speaker}_000001.wav", tone(0.3), 16000)
    esd = load_source(f"esd:{tmp_path / 'esd'}")
    assert {u.emotion for u in esd} == {"neutral", "angry"} and len(esd) == 6
    rav = tmp_path / "rav" / "Actor_01"
    rav.mkdir(parents=True)
    sf.write(rav / "03-01-05-02-01-01-01.wav", tone(0.3), 22050)
    sf.write(rav / "03-01-07-01-01-01-01.wav", tone(0.3), 22050)  # disgust: not one of the five labels
    (utt,) = load_source(f"ravdess:{tmp_path / 'rav'}")
    assert (utt.emotion, utt.intensity, utt.speaker) == ("angry", 1.0, "ravdess_01")
    cfg = load_config(None, ["data.n_val=1", "data.n_test=1"])
    split = split_speakers(esd, cfg.data)
    assert split == {"train": ["esd_0011"], "val": ["esd_0012"], "test": ["esd_0013"]}


def test_emodb_s_original_names_make_parallel_takes_and_repeat_weighs_a_corpus(tmp_path: Path) -> None:
    from ainn_cli.errors import UsageError
    from ainn_cli.train.data import repeated

    (tmp_path / "emodb").mkdir()
    for name in ("09a01Nc", "09a01Wa", "09a01Tb", "09b02Fd", "09a01Ab"):  # A (fear) is not one of our labels
        sf.write(tmp_path / "emodb" / f"{name}.wav", tone(0.3), 16000)
    takes = {Path(u.path).stem: (u.speaker, u.emotion, u.intensity, u.take)
             for u in load_source(f"emodb:{tmp_path / 'emodb'}")}
    assert takes == {"09a01Nc": ("emodb_09", "neutral", 0.0, "a01-1"), "09a01Wa": ("emodb_09", "angry", 1.0, "a01-1"),
                     "09a01Tb": ("emodb_09", "sad", 1.0, "a01-1"), "09b02Fd": ("emodb_09", "happy", 1.0, "b02-1")}
    cfg = load_config(None, ["data.repeat={ emodb_sad = 3, emodb_angry = 2 }"])
    rows = repeated(load_source(f"emodb:{tmp_path / 'emodb'}"), cfg.data.repeat)
    assert [Path(u.path).stem for u in rows] == ["09a01Nc", "09a01Tb", "09a01Tb", "09a01Tb", "09a01Wa", "09a01Wa",
                                                 "09b02Fd"]
    for bad in ("{ emodb_sad = 1.5 }", "{ emodb_sad = 0 }", "{ sad = 2 }"):
        with pytest.raises(UsageError, match="data.repeat"):
            load_config(None, [f"data.repeat={bad}"])


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_saves_latest_and_exits_130(manifest: Path, tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C, or the SIGTERM a scheduler sends, stops training with `latest` saved at the current step."""
    run = tmp_path / "run"
    sets = [arg for o in [*TINY, f"data.cache_dir=\"{tmp_path / 'cache'}\"", "stage1.steps=100000",
                          "checkpoint_every=100000"] for arg in ("--set", o)]
    command = [sys.executable, "-m", "ainn_cli", "train", "--config", str(REPO / "configs" / "default.toml"),
               "--data", f"manifest:{manifest}", "--out", str(run), "--stage", "stage1", "--quiet", *sets]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "stage1" / "log.csv").exists() or len(read_log(run / "stage1" / "log.csv")) < 4:
        assert process.poll() is None and time.monotonic() < deadline, process.stderr and process.stderr.read()
        time.sleep(0.2)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "interrupted" in stderr
    saved = torch.load(run / "stage1" / "latest.pt", weights_only=True)
    assert saved["step"] >= 2 and "optimizer" in saved


def test_overrides_take_toml_values_and_refuse_wrong_types() -> None:
    from ainn_cli.errors import UsageError

    default = REPO / "configs" / "default.toml"
    cfg = load_config(default, ["stage2.lambdas={ ecc = 1, cycle = 0.5 }", "variant=baseline", "stage1.lr=1"])
    assert cfg.stage2.lambdas == {"ecc": 1.0, "cycle": 0.5}  # a table replaces the mapping; a dotted key edits it
    assert load_config(default, ["stage2.lambdas.ecc=2"]).stage2.lambdas == {**load_config(default).stage2.lambdas,
                                                                             "ecc": 2.0}
    assert cfg.variant == "baseline" and cfg.stage1.lr == 1.0 and isinstance(cfg.stage1.lr, float)
    assert load_config(default, ['data.sources=["manifest:a.csv"]']).data.sources == ("manifest:a.csv",)
    for bad, message in [("stage1.steps=ten", "stage1.steps: expected an integer"),
                         ("stage2.lambdas.ecc=high", "stage2.lambdas.ecc: expected a number"),
                         ("data.sources=3", "data.sources: expected a list of strings")]:
        with pytest.raises(UsageError, match=message):
            load_config(default, [bad])


def test_fit_head_balances_classes_and_separates_them() -> None:
    from ainn_cli.train.refit import fit_head

    torch.manual_seed(0)
    centres = torch.randn(3, 6) * 3
    labels = torch.tensor([0] * 60 + [1] * 10 + [2] * 10)  # class 0 six times as common
    features = centres[labels] + torch.randn(80, 6)
    weight, bias = fit_head(features, labels, 3, l2=1e-3)
    predicted = (features @ weight.T + bias).argmax(-1)
    assert all((predicted[labels == k] == k).float().mean() > 0.8 for k in range(3))
    strong, _ = fit_head(features, labels, 3, l2=10.0)
    assert strong.norm() < weight.norm() / 5  # the penalty shrinks the weights


def test_sample_weights_balance_labels_then_the_groups_within_each() -> None:
    from ainn_cli.train.refit import sample_weights

    labels = torch.tensor([0] * 8 + [0] * 2 + [1] * 5)
    groups = torch.tensor([1] * 8 + [0] * 2 + [1] * 5)  # label 0: eight acted takes, two read ones
    weights = sample_weights(labels, groups)
    assert weights[labels == 0].sum() == pytest.approx(weights[labels == 1].sum())
    assert weights[:8].sum() == pytest.approx(weights[8:10].sum())  # each group half of its label
    torch.testing.assert_close(sample_weights(labels, torch.zeros_like(labels))[:10], torch.full((10,), 0.1))


def test_fit_head_with_groups_keeps_a_small_group_of_read_speech_in_its_class() -> None:
    """Two read-speech clips of the neutral class sit near the angry takes: weighed as one group of two
    (half the neutral weight), they are read as neutral; weighed as two clips of sixty, they are not."""
    from ainn_cli.train.refit import fit_head

    torch.manual_seed(0)
    acted = torch.cat([torch.randn(30, 4) * 0.3 + torch.tensor([-2.0, 0, 0, 0]),  # neutral takes
                       torch.randn(30, 4) * 0.3 + torch.tensor([2.0, 0, 0, 0])])  # angry takes
    read = torch.randn(2, 4) * 0.1 + torch.tensor([1.5, 0, 0, 0])
    features, labels = torch.cat([acted, read]), torch.tensor([0] * 30 + [1] * 30 + [0] * 2)
    groups = torch.tensor([1] * 60 + [0] * 2)
    for grouped, expected in ((groups, 0), (None, 1)):
        weight, bias = fit_head(features, labels, 2, l2=1e-3, groups=grouped)
        assert ((read @ weight.T + bias).argmax(-1) == expected).all()
        assert ((acted @ weight.T + bias).argmax(-1) == labels[:60]).float().mean() > 0.9


def test_neutral_prototype_comes_from_the_actors_neutral_takes() -> None:
    """As the calibration's zero: read speech of speakers with no emotional take does not move it."""
    import numpy as np

    from ainn_cli.emotions import LABELS
    from ainn_cli.train.data import Corpus, Utterance
    from ainn_cli.train.export import prototypes

    actors = [Utterance("a", "actor", e, 0.0 if e == "neutral" else 1.0) for e in ("neutral", "angry")]
    readers = [Utterance("r", f"reader{k}", "neutral", 0.0) for k in range(3)]
    corpus = Corpus(actors + readers, [np.zeros((80, 4))] * 5, LABELS)
    assert corpus.acting().tolist() == [True, True, False, False, False]
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0]] + [[0.6, 0.8]] * 3)
    assert prototypes(corpus, embeddings)["neutral"] == [1.0, 0.0]
    alone = Corpus(readers, [np.zeros((80, 4))] * 3, LABELS)  # no actor: the readers' speech
    assert prototypes(alone, embeddings[2:])["neutral"] == pytest.approx([0.6, 0.8])


@pytest.mark.slow
def test_recognizer_stage_refits_the_head_on_whole_utterances(manifest: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(config(manifest, tmp_path, "recognizer.steps=1", "refit_head=0.001"), run, stages=("recognizer",),
          export=tmp_path / "bundle", quiet=True)
    best = torch.load(run / "recognizer" / "best.pt", weights_only=True)["nets"]
    refit = torch.load(run / "recognizer" / "refit.pt", weights_only=True)
    changed = {k for k in best if not torch.equal(best[k], refit["nets"][k])}
    assert changed == {"recognizer.classifier.weight", "recognizer.classifier.bias"}
    assert refit["refit_accuracy"] > 0.5  # five tones, one per emotion: separable once pooled whole
    exported = cast(Recognizer, load_pipeline(str(tmp_path / "bundle"), "cpu").recognizer).classifier.weight
    torch.testing.assert_close(exported.float(), refit["nets"]["recognizer.classifier.weight"], atol=1e-2, rtol=1e-2)


def test_calibration_takes_its_zero_from_the_actors_neutral_takes() -> None:
    """Read speech of speakers with no emotional take (LibriSpeech) does not move strength 0."""
    import numpy as np

    from ainn_cli.emotions import LABELS
    from ainn_cli.train.data import Corpus, Utterance
    from ainn_cli.train.export import calibrate

    actors = [Utterance("a", "actor", e, 0.0 if e == "neutral" else 1.0) for e in ("neutral", "neutral", "angry")]
    readers = [Utterance("r", f"reader{k}", "neutral", 0.0) for k in range(5)]
    both = Corpus(actors + readers, [np.zeros((80, 4))] * 8, LABELS)
    raw = np.array([0.01, 0.03, 0.9] + [0.5] * 5)
    cal = calibrate(both, raw)
    assert cal.low["angry"] == pytest.approx(0.02) and cal.high["angry"] == pytest.approx(0.9)
    alone = Corpus(readers + actors[2:], [np.zeros((80, 4))] * 6, LABELS)  # no actor's neutral take: the readers'
    assert calibrate(alone, np.array([0.5] * 5 + [0.9])).low["angry"] == pytest.approx(0.5)


def test_critic_terms_move_only_their_own_player() -> None:
    """`adv`: G's term reaches the conversion, not the critic; the critic's term reaches the critic only."""
    from ainn_cli.train.critic import Critic, CriticConfig, critic_losses

    torch.manual_seed(0)
    critic = Critic(CriticConfig(n_mels=8, channels=4, classes=3))
    torch.nn.init.normal_(critic.out.weight)
    torch.nn.init.normal_(critic.embed.weight)
    real, label = torch.randn(2, 8, 16), torch.tensor([1, 2])
    fake = torch.randn(2, 8, 16, requires_grad=True)
    losses = critic_losses(critic, real, fake, label)
    assert torch.allclose(losses["adv"], losses["adv_g"] + losses["adv_d"])
    torch.autograd.backward(losses["adv"])
    alone = fake.detach().requires_grad_(True)
    ((critic(alone, label) - 1).pow(2).mean()).backward()
    assert fake.grad is not None and alone.grad is not None and torch.allclose(fake.grad, alone.grad, atol=1e-6)
    critic.zero_grad()
    d_term = (critic(real, label) - 1).pow(2).mean() + critic(fake.detach(), label).pow(2).mean()
    expected = torch.autograd.grad(d_term, list(critic.parameters()))
    critic.zero_grad()
    torch.autograd.backward(critic_losses(critic, real, fake.detach(), label)["adv"])
    assert all(p.grad is not None and torch.allclose(p.grad, g, atol=1e-6)
               for p, g in zip(critic.parameters(), expected))


@pytest.mark.slow
def test_reshape_variant_with_a_critic_trains_it_and_leaves_it_out_of_the_bundle(manifest: Path,
                                                                                   tmp_path: Path) -> None:
    """Stage II with an `adv` weight after a Stage I without one: the critic starts fresh, trains with G, and
    the exported bundle is the same set of components as without it."""
    base = config(manifest, tmp_path, "stage1.steps=1", "variant=\"reshape\"")
    train(base, tmp_path / "start", stages=("stage1",), quiet=True)
    cfg = config(manifest, tmp_path, "stage2.steps=2", "variant=\"reshape\"",
                 "stage2.lambdas={ rec = 1, env = 1, par = 0.3, adv = 0.1 }")
    train(cfg, tmp_path / "run", stages=("stage2",), init=tmp_path / "start" / "stage1" / "latest.pt",
          export=tmp_path / "bundle", quiet=True)
    rows = [r for r in read_log(tmp_path / "run" / "stage2" / "log.csv") if r["adv"]]
    assert len(rows) == 2 and all(math.isfinite(float(r[k])) for r in rows for k in ("adv", "adv_g", "adv_d"))
    nets = torch.load(tmp_path / "run" / "stage2" / "latest.pt", weights_only=True)["nets"]
    assert float(nets["critic.out.weight"].abs().sum()) > 0  # zero at the start: the critic learnt
    assert not any(p.name.startswith("critic") for p in (tmp_path / "bundle").iterdir())
    assert load_pipeline(str(tmp_path / "bundle"), "cpu").prosody is not None


def test_adv_outside_the_reshape_variants_stage2_is_a_usage_error() -> None:
    from ainn_cli.errors import UsageError

    with pytest.raises(UsageError, match="stage2.lambdas.adv.*reshape"):
        load_config(REPO / "configs" / "default.toml", ["stage2.lambdas.adv=0.1"])
    with pytest.raises(UsageError, match="stage1.lambdas.adv"):
        load_config(REPO / "configs" / "reshape.toml", ["stage1.lambdas.adv=0.1"])
    assert load_config(REPO / "configs" / "reshape.toml", ["stage2.lambdas.adv=0.1"]).stage2.lambdas["adv"] == 0.1
