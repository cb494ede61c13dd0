"""Readers: one module per file format. Each registers itself with :func:`base.register`."""
from .base import ReadResult, Reader, SkipLog, get_reader, readers, register

__all__ = ["ReadResult", "Reader", "SkipLog", "get_reader", "readers", "register"]
