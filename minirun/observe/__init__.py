"""Seeing inside a container: its start-up trace (trace.py) and its resource use (stats.py)."""
