"""Subcommands of `videoboost` that live outside cli.py; each module has `register(sub)`."""
