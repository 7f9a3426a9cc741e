"""The ``videoboost`` command line: :func:`main` parses, each ``cmd_*`` calls one stage."""

from videoboost.cli.main import main

__all__ = ["main"]
