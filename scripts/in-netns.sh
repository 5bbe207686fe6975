#!/usr/bin/env bash
# Run CMD... inside a fresh, private network namespace whose only interface is `lo` (up).
#
# Why: Phoenix binds its OTLP/gRPC port on every interface ([::]) and cannot be told
# otherwise. Inside this namespace "every interface" is just loopback, so nothing it opens
# is reachable from the host or the network, and the tests cannot reach anything but
# 127.0.0.1 either. Run the whole pytest session in here so the test traffic and the REST
# queries share the namespace with Phoenix. The namespace dies with CMD.
#
# Usage: scripts/in-netns.sh python -m pytest tests/e2e
# Needs root (or CAP_SYS_ADMIN) for `unshare --net`; install Phoenix first, outside, with
# scripts/setup-phoenix.sh (there is no registry access in here).
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 CMD [ARG...]" >&2
    exit 2
fi

if [[ "${_IN_NETNS_CHILD:-}" != 1 ]]; then
    if [[ $EUID -ne 0 ]]; then
        echo "in-netns: needs root for 'unshare --net' (try: sudo $0 $*)" >&2
        exit 1
    fi
    _IN_NETNS_CHILD=1 exec unshare --net -- "$0" "$@"
fi

unset _IN_NETNS_CHILD
if command -v ip >/dev/null 2>&1; then
    ip link set lo up
else
    # No iproute2 (apt-get install -y iproute2): set IFF_UP on lo with the same ioctl `ip` uses.
    python3 - <<'EOF'
import fcntl, socket, struct
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH", b"lo", 0)))[1]
    fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))
EOF
fi
exec "$@"
