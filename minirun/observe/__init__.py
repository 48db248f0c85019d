"""Seeing inside a container: its start-up trace (trace.py); events, stats and metrics later."""
