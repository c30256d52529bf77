"""What training optimises: the AINN modules in one `nn.Module`, built from a `TrainConfig`.

    Nets = Ec (content) + Ee (emotion) + R (recognizer) + G (generator)
           [+ P (prosody predictor, prosody variant)] + probe (training only: the `dis` adversary)
           [+ critic (training only, when stage2's `adv` weight is set: critic.py)]

The loss functions (losses.py, prosody_losses.py) read these modules; `objective.Objective` wraps them so
that one forward call returns a stage's named losses (what DistributedDataParallel wraps). `components()` is
what a bundle keeps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from ainn_cli.models.content import ContentEncoder
from ainn_cli.models.emotion import EmotionEncoder
from ainn_cli.models.generator import Generator
from ainn_cli.models.predictor import ProsodyPredictor
from ainn_cli.models.recognizer import Recognizer
from ainn_cli.train.config import TrainConfig
from ainn_cli.train.critic import Critic, CriticConfig

PROSODY_CHANNELS = 3  # ln f0, voicing, energy (pitch.prosody_inputs)
PREDICTOR_VARIANTS = ("prosody", "reshape")  # the variants whose bundles carry a prosody predictor P
RECOGNIZER_STAGE = "recognizer"  # R alone, with augmentation: --stage recognizer


@dataclass(frozen=True)
class LossSettings:
    """The loss constants of a run (from TrainConfig), passed through `Objective.forward`."""

    variant: str = "paper"
    triplet_margin: float = 0.2
    triplet_closeness: float = 0.25
    keep_reference_strength: float = 0.5
    cycle: bool = False

    @classmethod
    def of(cls, config: TrainConfig) -> LossSettings:
        return cls(variant=config.variant, triplet_margin=config.triplet_margin,
                   triplet_closeness=config.triplet_closeness,
                   keep_reference_strength=config.keep_reference_strength,
                   cycle=config.stage2.lambdas.get("cycle", 0.0) > 0)


class Nets(nn.Module):
    """The four AINN modules, the prosody predictor (prosody variant), the training-only emotion probe and, for
    `adv`, the training-only critic."""

    def __init__(self, content: ContentEncoder, emotion: EmotionEncoder, recognizer: Recognizer,
                 generator: Generator, prosody: ProsodyPredictor | None = None, probe_width: int = 128,
                 critic: Critic | None = None) -> None:
        super().__init__()
        self.content, self.emotion, self.recognizer, self.generator = content, emotion, recognizer, generator
        self.prosody, self.critic = prosody, critic
        c = content.config
        self.probe = nn.Sequential(
            nn.Linear(c.content_dim + c.timbre_dim, probe_width), nn.GELU(),
            nn.Linear(probe_width, len(recognizer.config.labels)),
        )

    def components(self) -> dict[str, nn.Module]:
        parts: dict[str, nn.Module] = {"content_encoder": self.content, "emotion_encoder": self.emotion,
                                       "recognizer": self.recognizer, "generator": self.generator}
        if self.prosody is not None:
            parts["prosody"] = self.prosody
        return parts


def build_nets(config: TrainConfig) -> Nets:
    """Fresh modules from the config's saved component configs (the prosody variant adds P and G's
    prosody input channels; a reshape run with an `adv` weight in stage2 adds the critic)."""
    model = config.model
    generator, prosody = model.generator, None
    if config.variant == "prosody":
        generator = dataclasses.replace(generator, prosody_dim=PROSODY_CHANNELS)
    if config.variant in PREDICTOR_VARIANTS:
        prosody = ProsodyPredictor(dataclasses.replace(model.prosody, emotion_dim=model.emotion_encoder.embed_dim))
    critic = None
    if config.variant == "reshape" and config.stage2.lambdas.get("adv", 0.0) > 0:
        critic = Critic(CriticConfig(n_mels=model.recognizer.n_mels, classes=len(model.recognizer.labels)))
    return Nets(ContentEncoder(model.content_encoder), EmotionEncoder(model.emotion_encoder),
                Recognizer(model.recognizer), Generator(generator), prosody, config.probe_width, critic)
