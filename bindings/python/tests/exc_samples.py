"""Exceptions raised at known lines, for the error-tracking tests (their
frames and source context lines are compared, so keep this file stable)."""

from __future__ import annotations

import errno


class AppError(Exception):
    """A user-defined exception (its module is sent, builtins' is null)."""


def parse(value):
    return int(value)


def load(value):
    try:
        return parse(value)
    except ValueError as e:
        raise AppError("could not load %r" % value) from e


def handle_context():
    try:
        load("x")
    except AppError:
        raise KeyError("while handling")  # implicit __context__


def missing_file():
    raise FileNotFoundError(errno.ENOENT, "No such file", "/nonexistent")


def group():
    errors = []
    for fn in (missing_file, lambda: load("y")):
        try:
            fn()
        except Exception as e:
            errors.append(e)
    raise ExceptionGroup("several failed", errors)  # noqa: F821 - Python >= 3.11


def caught(fn):
    try:
        fn()
    except BaseException as e:  # noqa: B036
        return e
    raise AssertionError("did not raise")
