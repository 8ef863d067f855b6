"""Speaker diarization inside shared-microphone tracks.

* :mod:`~greffier.diarization.pyannote_adapter`: ``PyannoteDiarizer``, the model (imports torch
  and pyannote lazily, when loaded);
* :mod:`~greffier.diarization.online`: ``OnlineDiarizer`` and ``SpeakerTracker``, live tracks;
* :mod:`~greffier.diarization.assign`: words to speakers;
* :mod:`~greffier.diarization.metrics`: DER, JER, RTTM.

Importing this package loads none of them.
"""
