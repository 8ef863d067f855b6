"""The LiveKit agent worker: joins rooms, captions every microphone, publishes captions.

Nothing imports this package except the command line.
"""
