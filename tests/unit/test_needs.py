"""A missing PostgreSQL or Elasticsearch skips a test on a developer's machine and fails it
under CI=true (`support.needs.service_missing`, used by fixtures_pg and fixtures_es)."""

from __future__ import annotations

import pytest

from support.needs import service_missing

FAIL, SKIP = pytest.fail.Exception, pytest.skip.Exception


@pytest.mark.parametrize("ci, outcome", [("true", FAIL), ("1", FAIL), ("", SKIP),
                                         ("false", SKIP)])
def test_missing_service(monkeypatch: pytest.MonkeyPatch, ci: str,
                         outcome: type[BaseException]) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="PostgreSQL is not reachable"):
        service_missing("PostgreSQL is not reachable")
