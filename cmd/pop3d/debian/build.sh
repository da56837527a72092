#!/usr/bin/env bash
# Builds the pop3d Debian package with dpkg-deb: make deb runs it.
#   DEB_OUT      folder for the .deb (default: dist)
#   DEB_VERSION  package and program version (default: from git)
#   GO           the go command
# Prints the path of the package on the last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cd "$repo"
GO=${GO:-go}
out=${DEB_OUT:-dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ -z "${DEB_VERSION:-}" ]; then
	# Debian versions start with a digit: 0.0~gitYYYYMMDD.HASH sorts by date.
	DEB_VERSION="0.0~git$(git log -1 --date=format:%Y%m%d%H%M --format=%cd.%h 2>/dev/null || date -u +%Y%m%d%H%M)"
	if [ -n "$(git status --porcelain 2>/dev/null)" ]; then DEB_VERSION="$DEB_VERSION+dirty"; fi
fi
arch=$(dpkg --print-architecture)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"

tags=""
depends="libc6"
if [ -f /usr/include/security/pam_appl.h ]; then
	depends="libc6, libpam0g"
else
	tags="-tags=nopam"
	echo "note: building without PAM (no libpam0g-dev): auth.method = \"system\" is unavailable in this package" >&2
fi
ldflags="-s -w -X github.com/pop3svc/pop3svc/cmd/internal/version.Version=$DEB_VERSION -X github.com/pop3svc/pop3svc/cmd/internal/config.SystemFile=/etc/pop3d/pop3d.toml"
# GOFLAGS may carry -tags=nopam from the Makefile; the tag is decided here.
# The same flags as `make build` (only the link step differs), so the
# build cache serves both.
GOFLAGS= CGO_ENABLED=1 "$GO" build $tags -ldflags "$ldflags" -o "$stage/usr/sbin/" ./cmd/pop3d ./cmd/pop3ctl

install -D -m 0644 "$here/pop3d.toml" "$stage/etc/pop3d/pop3d.toml"
install -D -m 0644 "$here/pam.d-pop3d" "$stage/etc/pam.d/pop3d"
install -D -m 0644 "$here/pop3d.service" "$stage/usr/lib/systemd/system/pop3d.service"
install -D -m 0644 "$here/system-auth.conf" "$stage/usr/share/doc/pop3d/system-auth.conf"
install -d -m 0755 "$stage/var/lib/pop3d"
shopt -s nullglob
for page in "$here"/man/*.[0-9]; do
	sec=${page##*.}
	install -D -m 0644 "$page" "$stage/usr/share/man/man$sec/$(basename "$page")"
	gzip -9n "$stage/usr/share/man/man$sec/$(basename "$page")"
done
cat >"$stage/usr/share/doc/pop3d/copyright" <<'EOT'
pop3d: a POP3 mail service (github.com/pop3svc/pop3svc).
EOT

install -d -m 0755 "$stage/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 "$here/$s" "$stage/DEBIAN/$s"; done
printf '/etc/pop3d/pop3d.toml\n/etc/pam.d/pop3d\n' >"$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<EOT
Package: pop3d
Version: $DEB_VERSION
Architecture: $arch
Maintainer: pop3svc <pop3svc@localhost>
Installed-Size: $size
Depends: $depends, passwd
Section: mail
Priority: optional
Homepage: https://github.com/pop3svc/pop3svc
Description: POP3 mail service with SMTP/LMTP delivery and an admin API
 pop3d serves POP3 (RFC 1939, STLS, POP3S, SASL, APOP, NTLM) from a mail
 store on plain files, receives mail by SMTP or LMTP, and has an admin API,
 a browser console and Prometheus metrics. pop3ctl is the administrator's
 tool: domains, mailboxes, passwords, quotas, settings, backup and restore.
EOT
deb="$out/pop3d_${DEB_VERSION}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
