"""Integrations with training frameworks; each module imports its framework only when imported.

* :mod:`ydrop.integrations.lightning`: ``GuideCallback`` for PyTorch Lightning
  (``pip install 'ydrop[lightning]'``).
"""
