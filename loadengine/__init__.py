"""loadengine: drives a precise rate of row changes per second into MySQL/MariaDB."""

__version__ = "0.1.0"
