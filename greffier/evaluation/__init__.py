"""Evaluation: data-set readers, text normalisers, metrics with their standard definitions
(WER/CER through jiwer, DER/JER through pyannote.metrics, cpWER through meeteval), latency and
flicker bookkeeping, resource meters, and ``greffier bench``.

Importing it loads no scoring library and no model: ``jiwer``, ``pyannote.metrics``,
``meeteval`` and ``whisper_normalizer`` are imported inside the functions that use them.

* ``datasets``: manifest, LibriSpeech, Common Voice, MLS and AMI-style layouts -> ``Utterance``.
* ``normalize``: Whisper's English and basic normalisers, greffier's French one.
* ``metrics``: WER, CER (raw and normalised), DER/JER, cpWER, real-time factor.
* ``latency``: first caption and final latencies by utterance length, retractions, flicker.
* ``resources``: wall/CPU time, peak memory, machine and library versions.
* ``asr_bench``: ``greffier bench asr``; ``command``: the ``bench`` command line.
"""
