"""Fixtures shared by the unit tests."""

from tests.support.logs import log

__all__ = ["log"]
