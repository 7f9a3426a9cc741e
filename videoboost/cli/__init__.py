"""The ``videoboost`` command line: :func:`main` parses, each ``cmd_*`` calls one stage."""

from videoboost.cli.main import build_parser, main, train_config_from_args

__all__ = ["build_parser", "main", "train_config_from_args"]
