#!/usr/bin/env bash
# Brings up a GlusterFS replica-2 volume on this machine for the cluster
# tests (make test-cluster), the way the mail store runs on a NAS shared by
# several servers:
#   - installs Debian's glusterfs-server and glusterfs-client when missing;
#   - gives this host a private address (10.213.250.1 on a bridge without ports,
#     p3gluster0) for the bricks, since GlusterFS refuses loopback bricks;
#   - starts glusterd when it does not run (and remembers that it did);
#   - creates and starts the volume pop3svc (two bricks, directories under
#     $GLUSTER_BRICKS; "force": bricks on the root file system, replica 2);
#   - prints the volume's address for mount -t glusterfs.
# .ci/gluster-down.sh undoes all of it. Needs root.
set -euo pipefail

GLUSTER_ADDR=${GLUSTER_ADDR:-10.213.250.1}
GLUSTER_VOLUME=${GLUSTER_VOLUME:-pop3svc}
GLUSTER_BRICKS=${GLUSTER_BRICKS:-/var/tmp/pop3svc-gluster}
STATE=/run/pop3svc-gluster

if [ "$(id -u)" != 0 ]; then
	echo "gluster-up: needs root" >&2
	exit 1
fi
missing=""
for p in glusterfs-server glusterfs-client; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing
fi
mkdir -p "$STATE"

if ! ip -o addr show dev p3gluster0 2>/dev/null | grep -q " $GLUSTER_ADDR/"; then
	ip link add p3gluster0 type bridge
	ip addr add "$GLUSTER_ADDR/32" dev p3gluster0
	ip link set p3gluster0 up
	touch "$STATE/bridge"
fi

if ! pidof glusterd >/dev/null; then
	glusterd -p "$STATE/glusterd.pid"
	touch "$STATE/started-glusterd"
fi
for _ in $(seq 100); do
	gluster --mode=script volume list >/dev/null 2>&1 && break
	sleep 0.2
done

if ! gluster --mode=script volume info "$GLUSTER_VOLUME" >/dev/null 2>&1; then
	rm -rf "$GLUSTER_BRICKS"
	mkdir -p "$GLUSTER_BRICKS/b1" "$GLUSTER_BRICKS/b2"
	gluster --mode=script volume create "$GLUSTER_VOLUME" replica 2 \
		"$GLUSTER_ADDR:$GLUSTER_BRICKS/b1" "$GLUSTER_ADDR:$GLUSTER_BRICKS/b2" force
fi
# md-cache (stat-prefetch) serves folder listings from a client's cache,
# which hides a message another client just renamed into a lock folder:
# the mail store needs it off (see store/filestore's package doc).
gluster --mode=script volume set "$GLUSTER_VOLUME" performance.stat-prefetch off >/dev/null
# quick-read serves a small file's content from a client's cache for up to
# a second, and open-behind lets it answer without opening the file: a
# server that locks a queue entry must read the progress log as another
# server just left it, or it delivers a second copy (store/queue's
# TestSharedLockReadsTheLatestProgress). Both off.
gluster --mode=script volume set "$GLUSTER_VOLUME" performance.quick-read off >/dev/null
gluster --mode=script volume set "$GLUSTER_VOLUME" performance.open-behind off >/dev/null
if ! gluster --mode=script volume info "$GLUSTER_VOLUME" | grep -q '^Status: Started'; then
	gluster --mode=script volume start "$GLUSTER_VOLUME" force
fi
for _ in $(seq 100); do
	online=$(gluster --mode=script volume status "$GLUSTER_VOLUME" detail 2>/dev/null | grep -c '^Online.*: Y' || true)
	[ "$online" = 2 ] && break
	sleep 0.2
done
echo "$GLUSTER_ADDR:/$GLUSTER_VOLUME"
