"""loadengine: drives a precise rate of row changes per second into MySQL/MariaDB.

The MySQL driver's C extension must be imported before anything loads the system OpenSSL
(``hashlib``, ``ssl``, ``secrets``...): its bundled libssl needs newer symbols, and a plain
``import mysql.connector`` after OpenSSL is loaded silently falls back to pure Python.
Importing it here, first, is the one reliable place; ``database.driver_info()`` reports
which implementation actually runs.
"""

try:
    import _mysql_connector  # noqa: F401
except ImportError:  # reported by database.driver_info(), never silently
    pass

__version__ = "0.1.0"
