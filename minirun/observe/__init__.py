"""Seeing inside a container: its start-up trace (trace.py), its resource use (stats.py), and
the log of what happened to containers and images (events.py)."""
