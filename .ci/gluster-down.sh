#!/usr/bin/env bash
# Undoes .ci/gluster-up.sh: unmounts every mount of the volume, stops and
# deletes it, removes the bricks, stops glusterd if gluster-up started it and
# removes the bridge p3gluster0.
set -uo pipefail

GLUSTER_VOLUME=${GLUSTER_VOLUME:-pop3svc}
GLUSTER_BRICKS=${GLUSTER_BRICKS:-/var/tmp/pop3svc-gluster}
STATE=/run/pop3svc-gluster

grep " fuse.glusterfs " /proc/mounts | awk '{print $2}' | while read -r m; do
	case "$(grep " $m fuse.glusterfs " /proc/mounts | awk '{print $1}')" in
	*:/"$GLUSTER_VOLUME") umount -l "$m" ;;
	esac
done
if pidof glusterd >/dev/null; then
	gluster --mode=script volume stop "$GLUSTER_VOLUME" force >/dev/null 2>&1
	gluster --mode=script volume delete "$GLUSTER_VOLUME" >/dev/null 2>&1
fi
rm -rf "$GLUSTER_BRICKS"
if [ -e "$STATE/started-glusterd" ]; then
	pid=$(cat "$STATE/glusterd.pid" 2>/dev/null || true)
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	# glusterd leaves its brick and self-heal daemons: stop the ones it ran.
	for p in $(pgrep -f "glusterfsd.*$GLUSTER_BRICKS|glustershd" || true); do kill "$p" 2>/dev/null; done
fi
if [ -e "$STATE/bridge" ]; then
	ip link del p3gluster0 2>/dev/null
fi
rm -rf "$STATE"
exit 0
