#!/bin/sh
# The image's entrypoint: one image runs every service and the CLI.
#
#   <service> [ARGS...]   ingest | ner | dp | llm | sink | checkpoint | linker | console
#                         ->  python -m services.<service>
#   eventpipe ARGS...     the CLI, e.g. `eventpipe topics create`, `eventpipe db migrate`
#   help                  this text
#   anything else         run as given (a shell, python, ...), for debugging
#
# `exec` replaces the shell, so the service is PID 1 and receives SIGTERM from
# `docker stop` / Kubernetes directly: it then finishes the batch it holds and commits.
set -eu

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
}

case "${1:-help}" in
    ingest | ner | dp | llm | sink | checkpoint | linker | console)
        service=$1
        shift
        exec python -m "services.${service}" "$@"
        ;;
    help | -h | --help)
        usage
        ;;
    *)
        exec "$@"
        ;;
esac
