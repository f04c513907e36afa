"""Allows ``python -m loadengine``."""

from loadengine.cli import main

main()
