"""``python -m posecli``: the command line."""

from .cli import entry

entry()
