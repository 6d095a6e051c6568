"""Klyntos benchmarks: `python -m bench` (what `make bench` runs).

Each benchmark prints one JSON object per line on stdout and a one-line human summary on
stderr. They measure ratios (speedup, efficiency, engine vs bare aiohttp), not absolute
times, because the machines they run on are small, shared and noisy.
"""
