"""Gongkai core: settings, models, intake, ledger, workflow, web app, CLI."""

__version__ = "0.1.0"
