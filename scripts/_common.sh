# Shared by the scripts: find the eventpipe command (the repository's .venv first).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -x "$here/../.venv/bin/eventpipe" ]; then
  EVENTPIPE="$here/../.venv/bin/eventpipe"
elif command -v eventpipe >/dev/null 2>&1; then
  EVENTPIPE="$(command -v eventpipe)"
else
  echo "eventpipe is not installed: run 'make install' first" >&2
  exit 2
fi
