#!/bin/sh
# docker-compose's data-init step: make the host's data directory usable by the services,
# which run as EVENTPIPE_UID:EVENTPIPE_GID. Runs as root in a container.
#
#   data-init.sh DIR UID GID
#
# - DIR missing, or owned by root (Docker creates a missing bind-mount source as root):
#   created and given to UID:GID.
# - DIR owned by UID: nothing to do.
# - DIR owned by anyone else: refuse, in one line saying what to set, so that compose stops
#   here instead of starting four services that crash-loop on PermissionError.
set -eu

if [ "$#" -ne 3 ]; then
    echo "usage: data-init.sh DIR UID GID" >&2
    exit 2
fi
dir=$1 uid=$2 gid=$3
case "$uid$gid" in
    *[!0-9]*) echo "data-init: uid and gid must be numbers, got '$uid' and '$gid'" >&2; exit 2 ;;
esac

mkdir -p "$dir"
owner=$(stat -c %u "$dir")
if [ "$owner" = 0 ] && [ "$uid" != 0 ]; then
    chown "$uid:$gid" "$dir"
    owner=$uid
fi
if [ "$owner" != "$uid" ]; then
    echo "data-init: $dir belongs to uid $owner, the services run as uid $uid: run" \
         "'export EVENTPIPE_UID=\$(id -u) EVENTPIPE_GID=\$(id -g)' and 'docker compose up' again" >&2
    exit 1
fi
# The services create files and folders (checkpoints/, run/) inside.
chmod u+rwx "$dir"
echo "data-init: $dir ready for $uid:$gid"
