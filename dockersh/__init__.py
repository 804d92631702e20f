"""dockersh: each SSH user's own persistent, hardened container."""

__version__ = "0.1.0"
