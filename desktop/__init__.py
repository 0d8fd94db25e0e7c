"""Atelier's desktop shell: CLI, paths, single instance, server lifecycle, window."""

from backend import __version__

__all__ = ["__version__"]
