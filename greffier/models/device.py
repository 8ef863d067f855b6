"""Device and precision: ``auto`` is resolved once per library and logged."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from greffier.core.errors import ConfigurationError
from greffier.core.log import get_logger

logger = get_logger("models.device")

_resolved: dict[tuple[str, str, str], DeviceChoice] = {}
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class DeviceChoice:
    """Where and at which precision a model runs."""

    device: str
    """``cpu`` or ``cuda``."""
    compute_type: str
    """CTranslate2 compute type (``int8``, ``float16``...) or torch dtype name."""


def resolve_device(
    device: str,
    compute_type: str,
    *,
    library: str,
    cuda_available: Callable[[], bool],
) -> DeviceChoice:
    """Turn ``auto`` settings into a concrete device and precision.

    ``auto`` picks CUDA when ``cuda_available()`` says so; precision ``auto`` is float16 on CUDA
    and int8 on CPU. The choice is made once per (library, settings) and logged.
    """
    key = (library, device, compute_type)
    with _lock:
        if key in _resolved:
            return _resolved[key]
        if device not in ("auto", "cpu", "cuda"):
            raise ConfigurationError(f"unknown device {device!r}", hint="use auto, cpu or cuda")
        has_cuda = device != "cpu" and cuda_available()
        if device == "cuda" and not has_cuda:
            raise ConfigurationError(
                "device 'cuda' was asked for but no CUDA device is visible",
                hint="set the device to auto or cpu, or check the GPU driver",
            )
        chosen = "cuda" if has_cuda else "cpu"
        choice = DeviceChoice(chosen, precision_for(chosen, compute_type))
        _resolved[key] = choice
        logger.info(
            "%s runs on %s with %s (settings: device=%s, compute_type=%s)",
            library,
            choice.device,
            choice.compute_type,
            device,
            compute_type,
        )
        return choice


def precision_for(device: str, compute_type: str) -> str:
    """The precision ``compute_type`` means on a concrete ``device``: ``auto`` is float16 on
    CUDA and int8 on CPU."""
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


def known_choice(device: str, compute_type: str, *, library: str) -> DeviceChoice | None:
    """What these settings mean, when it is known without probing the hardware: a concrete
    device, or ``auto`` that :func:`resolve_device` already resolved for ``library``."""
    if device in ("cpu", "cuda"):
        return DeviceChoice(device, precision_for(device, compute_type))
    with _lock:
        return _resolved.get((library, device, compute_type))
