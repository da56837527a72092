#!/usr/bin/env bash
# make test-cluster: the store's tests on a GlusterFS replica-2 volume
# mounted by two FUSE clients (as two servers would), and a small
# pop3bench cluster run (three test machines, a mount each), then the volume is
# torn down whatever the outcome. Needs root; installs glusterfs-server and
# glusterfs-client when missing (.ci/gluster-up.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
MNT=${GLUSTER_MOUNTS:-/run/pop3svc-gluster-mnt}

cleanup() {
	for m in "$MNT/a" "$MNT/b"; do
		mountpoint -q "$m" && umount "$m"
	done
	rm -rf "$MNT"
	bash .ci/gluster-down.sh
}
trap cleanup EXIT

vol=$(bash .ci/gluster-up.sh | tail -1)
mkdir -p "$MNT/a" "$MNT/b"
mount -t glusterfs "$vol" "$MNT/a"
mount -t glusterfs "$vol" "$MNT/b"
POP3SVC_SHARED_A="$MNT/a" POP3SVC_SHARED_B="$MNT/b" \
	$GO test -tags cluster -race -count=1 -timeout 15m -run 'Shared' ./store/filestore/ ./store/queue/
# pop3bench cluster in small (about a minute): three test machines, each
# with its own FUSE mount of the volume, kill -9 and SIGSTOP trials.
POP3SVC_GLUSTER_VOLUME="$vol" \
	$GO test -tags cluster -race -count=1 -timeout 10m -run 'ClusterSmoke' ./bench/cmd/pop3bench/
