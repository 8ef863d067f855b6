"""greffier.diarization."""
