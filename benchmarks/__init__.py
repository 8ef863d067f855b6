"""Benchmarks: speed, latency, accuracy and memory, measured on real audio and written to
``benchmarks/results/*.json`` with a Markdown table beside each. Not tests."""
