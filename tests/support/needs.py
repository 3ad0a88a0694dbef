"""A test that needs a service (PostgreSQL, Elasticsearch) which is not there: skipped on a
developer's machine, but failed under CI=true, where a skip would hide a broken setup."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def service_missing(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing service fails the test)", pytrace=False)
    pytest.skip(reason)
