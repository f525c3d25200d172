"""The labelled corpus of submission variants (see variants.py)."""
