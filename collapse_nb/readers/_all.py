"""Import every built-in reader so that it registers itself. One line per reader module."""
from . import text_log  # noqa: F401
