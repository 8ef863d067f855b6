"""greffier: real-time transcription and live subtitles for LiveKit meetings.

Importing the package is light: heavy dependencies (faster-whisper, torch, livekit) are
imported by their adapter modules only when used.
"""

__version__ = "0.1.0"
