"""Fixtures shared by the score tests (none at present; ``reference.py`` holds the slow references)."""
