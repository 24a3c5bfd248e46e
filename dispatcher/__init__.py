"""Gongkai core, in layers that import downwards only: ops → http → items | dispatch →
storage → rules → settings → errors (see the README's layout and `[tool.importlinter]`)."""

__version__ = "0.1.0"
