"""Contracts shared by every layer: types, audio helpers, settings, errors. No heavy imports."""
