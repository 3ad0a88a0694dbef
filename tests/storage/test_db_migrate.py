"""`eventpipe db migrate --wait`: a database that is not reachable yet (a container still
starting) is tried again with backoff until it is, or until the wait is over; on a real
PostgreSQL, reached through a proxy that is opened once the command has retried."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from helpers import EVENTPIPE, TcpProxy


def migrate(dsn: str, wait_s: int, data_dir: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPIPE_")}
    env.update(EVENTPIPE_POSTGRES_DSN=dsn, EVENTPIPE_DATA_DIR=str(data_dir))
    return subprocess.Popen([*EVENTPIPE, "db", "migrate", "--wait", str(wait_s)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_migrate_waits_for_the_database_then_gives_up_past_the_wait(
        pg_new_database: Callable[[], str], tmp_path: Path) -> None:
    dsn = pg_new_database()
    proxy = TcpProxy(int(conninfo_to_dict(dsn).get("port") or 5432))  # closed until restored
    via = make_conninfo(dsn, host="127.0.0.1", port=str(proxy.port))
    proc = migrate(via, 120, tmp_path)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # it has tried once and will try again
    assert "PostgreSQL not reachable yet" in line, line
    proxy.restore()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.startswith("applied: 0001"), out

    proxy.cut()
    started = time.monotonic()
    proc = migrate(via, 2, tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "not reachable yet" in err and "cannot reach PostgreSQL" in err, err
    assert time.monotonic() - started < 30
