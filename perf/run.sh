#!/usr/bin/env bash
# The one command: builds the benchmark, installs the Python peer (qemu.qmp from PyPI,
# into perf/.venv), runs every workload against fresh qemu-storage-daemon processes and
# prints the table (markdown) on stdout; progress goes to stderr.
#
#   perf/run.sh            full run (about 10 minutes)
#   perf/run.sh --quick    smaller counts, for development
#   extra arguments go to `qmp-perf run`: --reps N, --only raw,std-blocking,
#   --workloads sequential,pipelined,schema, --no-scale
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

command -v qemu-storage-daemon >/dev/null || { echo "qemu-storage-daemon is needed (apt-get install qemu-system-x86 or qemu-utils)" >&2; exit 1; }
command -v taskset >/dev/null || { echo "taskset is needed (util-linux)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "needs at least 2 CPUs (server on CPU 0, client on CPU 1)" >&2; exit 1; }

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import qemu.qmp, uvloop' 2>/dev/null; then
    echo "installing qemu.qmp and uvloop into perf/.venv" >&2
    python3 -m venv .venv
    .venv/bin/pip install --quiet --upgrade 'qemu.qmp' 'uvloop' >&2
fi
export QMP_PERF_PYTHON="$here/.venv/bin/python"

# 200 monitors need 200 connections plus the daemons' own descriptors.
ulimit -n 4096 2>/dev/null || true

nice cargo build --release --quiet >&2
exec ./target/release/qmp-perf run "$@"
