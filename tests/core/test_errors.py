"""Errors in one line: type and message, whitespace collapsed, cut to a length; a driver's
error rather than its wrapper's."""

from __future__ import annotations

from csms.core.errors import one_line


class Wrapper(Exception):
    def __init__(self, message: str, orig: BaseException) -> None:
        super().__init__(message)
        self.orig = orig


def test_type_and_message_on_one_line() -> None:
    assert one_line(ValueError("bad\n  value\tthere")) == "ValueError: bad value there"
    assert one_line(KeyError()) == "KeyError"
    assert one_line(ValueError("x" * 500), limit=20) == "ValueError: xxxxxxxx"


def test_a_drivers_error_without_the_statement() -> None:
    wrapped = Wrapper("(IntegrityError) refused [SQL: UPDATE ...]", RuntimeError("refused"))
    assert one_line(wrapped) == "RuntimeError: refused"
