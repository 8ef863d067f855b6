"""greffier.rtc."""
