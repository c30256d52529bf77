"""The package's layers (docs/architecture.md): no module imports a layer above its own.

    cli, commands, batch, display, console, card        the command line
    eval/                                               `ainn evaluate`: scoring and reports
    train/                                              training, export of a bundle
    pipeline                                            load a bundle, convert, read strength
    bundle, bundle_files, limits, hub                   bundles on disk and on the Hub
    models/                                             the nn.Modules
    errors, emotions, files, chunks, audio, mel, pitch, prosody, rate, device, memory   the ground floor
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ainn_cli"
COMMAND_LINE = ("cli", "commands", "batch", "display", "console", "card", "rich", "typer")
BUNDLES = ("bundle", "bundle_files", "limits", "hub")
GROUND = ("errors", "emotions", "files", "chunks", "audio", "mel", "pitch", "prosody", "rate", "device", "memory")
ABOVE_MODELS = (*COMMAND_LINE, "eval", "train", "pipeline", *BUNDLES)
# module (or package) -> what it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    **{name: (*ABOVE_MODELS, "models") for name in GROUND},
    "models": ABOVE_MODELS,
    **{name: (*COMMAND_LINE, "eval", "train", "pipeline") for name in BUNDLES},
    "pipeline": (*COMMAND_LINE, "eval", "train"),
    "train": ("cli", "commands", "batch", "display", "card", "typer", "eval", "pipeline", "hub"),
    "eval": ("cli", "commands", "typer", "train"),
}


def module_name(file: Path) -> str:
    parts = file.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(file: Path) -> set[str]:
    """Top-level names of ainn_cli modules (and rich/typer) that `file` imports, inside functions too."""
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.startswith("ainn_cli."):
                found.add(name.removeprefix("ainn_cli."))
            elif name.split(".")[0] in ("rich", "typer"):
                found.add(name.split(".")[0])
    return found


def rule_for(module: str) -> tuple[str, ...]:
    return FORBIDDEN.get(module) or FORBIDDEN.get(module.split(".")[0], ())


@pytest.mark.parametrize("file", sorted(PACKAGE.rglob("*.py")), ids=lambda f: module_name(f) or "__init__")
def test_no_module_imports_a_layer_above_its_own(file: Path) -> None:
    module, forbidden = module_name(file), rule_for(module_name(file))
    bad = sorted(n for n in imported(file) if n.split(".")[0] in forbidden and n.split(".")[0] != module.split(".")[0])
    assert not bad, f"{module} imports {bad}, a layer above it (see docs/architecture.md)"


def test_every_module_has_a_layer() -> None:
    """A new module must be placed: in a package with a rule, in FORBIDDEN, or in the command line."""
    top = {module_name(f).split(".")[0] for f in PACKAGE.rglob("*.py")} - {"", "__main__"}
    unplaced = sorted(top - set(FORBIDDEN) - set(COMMAND_LINE))
    assert not unplaced, f"modules without a layer: {unplaced}"


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    file = tmp_path / "recognizer.py"
    file.write_text("from ainn_cli.pipeline import Pipeline\nimport rich\n")
    assert imported(file) == {"pipeline.Pipeline", "pipeline", "rich"}
    assert "pipeline" in rule_for("models.recognizer") and "rich" in rule_for("models.recognizer")


def test_every_package_folder_is_a_package() -> None:
    folders = {f.parent for f in PACKAGE.rglob("*.py") if "__pycache__" not in f.parts}
    assert all((folder / "__init__.py").is_file() for folder in folders), sorted(map(str, folders))
