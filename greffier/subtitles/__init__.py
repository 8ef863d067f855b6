"""greffier.subtitles."""
