"""Speech data sets as researchers keep them, read into one :class:`Utterance` type.

Layouts (``load_dataset`` recognises each from the path):

* greffier manifest: a TSV with ``id``, ``audio``, ``reference``, ``kind`` and ``language``
  columns (paths relative to the TSV); ``kind`` is ``transcript`` (reference text, ``.txt``
  or ``.stm``) or ``rttm ...`` (reference turns, optionally ``(uem A-B s)``). ``shared`` names
  the shared clips' manifest.
* LibriSpeech: ``<speaker>/<chapter>/<speaker>-<chapter>.trans.txt``, lines ``<id> <TEXT>``,
  the audio ``<id>.flac`` (or ``.wav``...) beside it; English unless told otherwise.
* Common Voice: a TSV with ``path``, ``sentence`` (and ``locale``, ``client_id``) columns,
  the audio in ``clips/`` beside it.
* MLS: ``transcripts.txt`` with ``<id>\\t<text>`` lines, ``id = <speaker>_<book>_<n>``, the audio
  in ``audio/<speaker>/<book>/<id>.flac``; the language from an ``mls_<language>`` folder name.
* AMI-style: ``*.rttm`` files anywhere under a folder (one or several recordings each), the
  audio whose name is the RTTM file id (``ES2004a.wav``) or starts with it and a dot
  (``ES2004a.Mix-Headset.wav``, preferred over other microphones), optional ``<id>.uem``
  (scored region) and ``<id>.txt`` or ``<id>.stm`` (reference transcript).

Nothing here reads audio; readers check that each audio file exists.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from greffier.core.errors import ConfigurationError
from greffier.core.text import read_reference
from greffier.core.types import SpeakerTurn
from greffier.diarization.metrics import read_rttm, write_rttm

AUDIO_EXTENSIONS = (".flac", ".wav", ".mp3", ".ogg", ".opus", ".m4a", ".webm")
MLS_LANGUAGES = {
    "english": "en",
    "french": "fr",
    "german": "de",
    "spanish": "es",
    "italian": "it",
    "dutch": "nl",
    "portuguese": "pt",
    "polish": "pl",
}


class DatasetError(ConfigurationError):
    """A data set path that cannot be read as any known layout, or with missing files."""


@dataclass(frozen=True, slots=True)
class Utterance:
    """One recording to score: its audio and what it should give."""

    id: str
    audio_path: Path
    language: str | None
    """Language code (``en``, ``fr``...) or None when the data set does not say."""
    reference: str | None = None
    """Reference transcript (None for diarization-only items)."""
    rttm_path: Path | None = None
    """Reference speaker turns (RTTM), read with ``rttm_uri`` as file id."""
    rttm_uri: str | None = None
    speakers: tuple[str, ...] = ()
    """Speaker ids where the data set names them."""
    num_speakers: int | None = None
    duration_s: float | None = None
    uem: tuple[float, float] | None = None
    """Scored region (seconds) for diarization."""
    transcript_path: Path | None = None
    """The AMI-style reference transcript (``.stm`` names each line's speaker, for cpWER)."""

    def reference_turns(self) -> list[SpeakerTurn]:
        """The RTTM's turns of this recording ([] without RTTM)."""
        if self.rttm_path is None:
            return []
        return read_rttm(self.rttm_path, uri=self.rttm_uri)


def _require_audio(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(
            f"{what}: audio file {path} is missing",
            hint="check the data set layout (see greffier bench --help)",
        )
    return path


def _find_audio(folder: Path, stem: str) -> Path | None:
    for ext in AUDIO_EXTENSIONS:
        candidate = folder / f"{stem}{ext}"
        if candidate.is_file():
            return candidate
    return None


def _none_if_blank(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


_UEM = re.compile(r"uem\s+([\d.]+)\s*-\s*([\d.]+)")


def read_manifest(path: str | Path, *, kinds: Sequence[str] | None = None) -> list[Utterance]:
    """The greffier manifest TSV; ``kinds`` keeps rows whose kind starts with one of them
    (``transcript``, ``rttm``)."""
    path = Path(path)
    root = path.parent
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = {"id", "audio", "reference", "kind"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f"{path} is not a greffier manifest: no {sorted(missing)} column")
        rows = list(reader)
    out = []
    for row in rows:
        kind = row["kind"].strip()
        if kinds is not None and not any(kind.startswith(k) for k in kinds):
            continue
        audio = _require_audio(root / row["audio"], f"{path.name} row {row['id']}")
        ref_path = root / row["reference"] if row.get("reference") else None
        speakers = _none_if_blank(row.get("speakers"))
        duration = _none_if_blank(row.get("duration_s"))
        base = Utterance(
            id=row["id"],
            audio_path=audio,
            language=_none_if_blank(row.get("language")),
            num_speakers=int(speakers) if speakers else None,
            duration_s=float(duration) if duration else None,
        )
        if kind.startswith("rttm"):
            m = _UEM.search(kind)
            uem = (float(m[1]), float(m[2])) if m else None
            out.append(replace(base, rttm_path=ref_path, uem=uem))
        else:
            text = read_reference(ref_path) if ref_path is not None else None
            out.append(replace(base, reference=text))
    return out


def read_librispeech(folder: str | Path, *, language: str | None = "en") -> list[Utterance]:
    """A LibriSpeech-style folder: every ``*.trans.txt`` under it, audio beside it."""
    folder = Path(folder)
    out = []
    for trans in sorted(folder.rglob("*.trans.txt")):
        for number, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            uid, _, text = line.strip().partition(" ")
            audio = _find_audio(trans.parent, uid)
            if audio is None:
                raise DatasetError(
                    f"{trans.name}:{number}: no audio file for this line beside "
                    f"it (tried {', '.join(AUDIO_EXTENSIONS)})"
                )
            out.append(
                Utterance(
                    id=uid,
                    audio_path=audio,
                    language=language,
                    reference=text.strip(),
                    speakers=(uid.split("-")[0],),
                    num_speakers=1,
                )
            )
    if not out:
        raise DatasetError(f"no *.trans.txt file with lines under {folder}")
    return out


def read_common_voice(tsv: str | Path, *, language: str | None = None) -> list[Utterance]:
    """A Common Voice TSV (``path``, ``sentence``, optional ``locale`` and ``client_id``);
    audio in ``clips/`` beside it, or beside the TSV. ``language`` overrides ``locale``."""
    tsv = Path(tsv)
    with tsv.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"path", "sentence"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f"{tsv} is not a Common Voice TSV: no {sorted(missing)} column")
        rows = list(reader)
    out = []
    for row in rows:
        name = row["path"].strip()
        audio = tsv.parent / "clips" / name
        if not audio.is_file():
            audio = _require_audio(tsv.parent / name, f"{tsv.name} row {name}")
        client = _none_if_blank(row.get("client_id"))
        out.append(
            Utterance(
                id=Path(name).stem,
                audio_path=audio,
                language=language or _none_if_blank(row.get("locale")),
                reference=row["sentence"].strip(),
                speakers=(client,) if client else (),
                num_speakers=1,
            )
        )
    return out


def _mls_language(path: Path) -> str | None:
    for part in reversed(path.resolve().parts):
        m = re.fullmatch(r"mls_([a-z]+)(?:_opus)?", part.lower())
        if m:
            return MLS_LANGUAGES.get(m[1], m[1])
    return None


def read_mls(path: str | Path, *, language: str | None = None) -> list[Utterance]:
    """An MLS split: ``transcripts.txt`` (or the folder holding it) and ``audio/``."""
    path = Path(path)
    transcripts = path / "transcripts.txt" if path.is_dir() else path
    if not transcripts.is_file():
        raise DatasetError(f"{path} holds no transcripts.txt (MLS layout)")
    root = transcripts.parent
    lang = language or _mls_language(root)
    out = []
    for number, line in enumerate(transcripts.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        uid, sep, text = line.partition("\t")
        parts = uid.strip().split("_")
        if not sep or len(parts) != 3:
            raise DatasetError(
                f"{transcripts.name}:{number}: expected '<speaker>_<book>_<n><TAB><text>'"
            )
        audio = _find_audio(root / "audio" / parts[0] / parts[1], uid.strip())
        if audio is None:
            raise DatasetError(
                f"{transcripts.name}:{number}: no audio file in audio/{parts[0]}/{parts[1]}/"
            )
        out.append(
            Utterance(
                id=uid.strip(),
                audio_path=audio,
                language=lang,
                reference=text.strip(),
                speakers=(parts[0],),
                num_speakers=1,
            )
        )
    return out


def _rttm_uris(path: Path) -> list[str]:
    uris: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0] == "SPEAKER" and fields[1] not in uris:
            uris.append(fields[1])
    return uris


def _read_uem(path: Path, uri: str) -> tuple[float, float] | None:
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == uri:
            return float(fields[2]), float(fields[3])
    return None


def read_ami(folder: str | Path, *, language: str | None = "en") -> list[Utterance]:
    """An AMI-style folder: RTTM files, audio named after their file ids, optional UEM and
    transcripts (see the module docstring)."""
    folder = Path(folder)
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    audio_by_stem: dict[str, Path] = {}
    # AMI's headset mix first: the usual diarization input when several microphones are there
    for p in sorted(files, key=lambda f: "mix-headset" not in f.name.lower()):
        if p.suffix.lower() in AUDIO_EXTENSIONS:
            audio_by_stem.setdefault(p.name[: -len(p.suffix)], p)
            audio_by_stem.setdefault(p.name.split(".")[0], p)
    side = {
        (p.stem, p.suffix.lower()): p for p in files if p.suffix.lower() in (".uem", ".txt", ".stm")
    }
    out = []
    for rttm in (p for p in files if p.suffix.lower() == ".rttm"):
        for uri in _rttm_uris(rttm):
            audio = audio_by_stem.get(uri)
            if audio is None:
                raise DatasetError(
                    f"{rttm.name}: no audio file for recording {uri!r} under {folder}",
                    hint=f"name it {uri}.wav or {uri}.<mic>.wav",
                )
            uem_file = side.get((uri, ".uem"))
            transcript = side.get((uri, ".stm")) or side.get((uri, ".txt"))
            turns = read_rttm(rttm, uri=uri)
            speakers = tuple(sorted({t.speaker for t in turns}))
            out.append(
                Utterance(
                    id=uri,
                    audio_path=audio,
                    language=language,
                    reference=read_reference(transcript) if transcript else None,
                    rttm_path=rttm,
                    rttm_uri=uri,
                    speakers=speakers,
                    num_speakers=len(speakers),
                    uem=_read_uem(uem_file, uri) if uem_file else None,
                    transcript_path=transcript,
                )
            )
    if not out:
        raise DatasetError(f"no RTTM file with SPEAKER lines under {folder}")
    return out


def _tsv_header(path: Path) -> set[str]:
    with path.open(encoding="utf-8", newline="") as f:
        return set(f.readline().rstrip("\r\n").split("\t"))


def detect_layout(path: Path) -> str:
    """``manifest``, ``librispeech``, ``common_voice``, ``mls`` or ``ami`` for a path."""
    if path.is_file():
        if path.name == "transcripts.txt":
            return "mls"
        if path.suffix.lower() == ".tsv":
            header = _tsv_header(path)
            if {"id", "audio", "reference", "kind"} <= header:
                return "manifest"
            if {"path", "sentence"} <= header:
                return "common_voice"
        raise DatasetError(f"{path}: not a manifest, Common Voice TSV or MLS transcripts.txt")
    if not path.is_dir():
        raise DatasetError(f"data set {path} does not exist")
    if (path / "manifest.tsv").is_file():
        return "manifest"
    if (path / "transcripts.txt").is_file():
        return "mls"
    if next(path.rglob("*.trans.txt"), None) is not None:
        return "librispeech"
    if next(path.rglob("*.rttm"), None) is not None:
        return "ami"
    tsvs = [p for p in path.glob("*.tsv") if {"path", "sentence"} <= _tsv_header(p)]
    if len(tsvs) == 1:
        return "common_voice"
    if tsvs:
        raise DatasetError(
            f"{path} holds several Common Voice TSVs",
            hint="pass one of them: " + ", ".join(p.name for p in tsvs),
        )
    raise DatasetError(
        f"{path}: no manifest.tsv, transcripts.txt, *.trans.txt, *.rttm or Common Voice TSV found"
    )


def load_dataset(
    spec: str | Path,
    *,
    language: str | None = None,
    shared_root: Path | None = None,
    kinds: Sequence[str] | None = None,
) -> list[Utterance]:
    """Utterances of ``spec``: ``shared`` (the shared clips' manifest under ``shared_root``)
    or a path in one of the module's layouts. ``language`` overrides the data set's language
    where it has none (LibriSpeech, AMI) or for every item (Common Voice, MLS)."""
    if str(spec) == "shared":
        if shared_root is None:
            from greffier.core.config import Settings

            shared_root = Settings().speech_data
        return read_manifest(shared_root / "manifest.tsv", kinds=kinds)
    if str(spec) == "hard":
        raise DatasetError(
            "the hard set is built by the repository's benchmarks at run time",
            hint="use it with greffier bench streaming/live --set hard",
        )
    path = Path(spec).expanduser()
    layout = detect_layout(path)
    if layout == "manifest":
        return read_manifest(path / "manifest.tsv" if path.is_dir() else path, kinds=kinds)
    if layout == "librispeech":
        return read_librispeech(path, language=language or "en")
    if layout == "common_voice":
        if path.is_dir():
            path = next(p for p in path.glob("*.tsv") if {"path", "sentence"} <= _tsv_header(p))
        return read_common_voice(path, language=language)
    if layout == "mls":
        return read_mls(path, language=language)
    return read_ami(path, language=language or "en")


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def write_manifest(utterances: Iterable[Utterance], path: str | Path) -> Path:
    """Write utterances as a greffier manifest (absolute audio paths, references copied into
    ``<manifest folder>/ref/``), for tools that read only manifests."""
    path = Path(path)
    refs = path.parent / "ref"
    refs.mkdir(parents=True, exist_ok=True)
    lines = ["id\taudio\treference\tkind\tlanguage\tspeakers\tduration_s"]
    used: set[str] = set()
    for u in utterances:
        name = _SAFE.sub("_", u.id).strip("._") or "item"
        while name in used:
            name += "_"
        used.add(name)
        if u.reference is not None:
            ref = refs / f"{name}.txt"
            ref.write_text(u.reference + "\n", encoding="utf-8")
            kind = "transcript"
        elif u.rttm_path is not None:
            ref = refs / f"{name}.rttm"
            ref.write_text(write_rttm(u.reference_turns(), name), encoding="utf-8")
            kind = f"rttm (uem {u.uem[0]:g}-{u.uem[1]:g} s)" if u.uem else "rttm"
        else:
            continue
        n = u.num_speakers if u.num_speakers is not None else (len(u.speakers) or "")
        dur = "" if u.duration_s is None else f"{u.duration_s:.2f}"
        lines.append(
            "\t".join(
                [
                    name,
                    str(u.audio_path.resolve()),
                    f"ref/{ref.name}",
                    kind,
                    u.language or "",
                    str(n),
                    dur,
                ]
            )
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
