package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"golang.org/x/sys/unix"
)

// TestDebianPackage builds the package with `make deb`'s script, installs
// it with dpkg into a clean root (dpkg --root, maintainer scripts run
// without chroot and honour DPKG_ROOT), then starts the installed pop3d
// with the installed configuration as the unit does: as the system user
// the postinst made, with CAP_NET_BIND_SERVICE only and no new privileges,
// in a network namespace of its own (the package listens on 110 and 995)
// where /var/lib/pop3d is the root's mail root. A unixgram socket stands
// in for systemd's $NOTIFY_SOCKET. Real clients read the mail.
func TestDebianPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		pop3dtest.Unavailable(t, "installing a package, namespaces and setpriv need root", "")
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "useradd", "unshare", "nsenter", "setpriv", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			pop3dtest.Unavailable(t, tool+" is missing", "dpkg passwd util-linux iproute2")
		}
	}
	curl := pop3dtest.NeedTool(t, "curl")

	// Build.
	out := t.TempDir()
	build := exec.Command("bash", "debian/build.sh")
	build.Env = append(os.Environ(), "DEB_OUT="+out, "DEB_VERSION=1.0~test1")
	b, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("debian/build.sh: %v\n%s", err, b)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	deb := lines[len(lines)-1]
	st, err := os.Stat(deb)
	if err != nil {
		t.Fatalf("build.sh printed %q: %v", deb, err)
	}
	t.Logf("package %s: %d octets", filepath.Base(deb), st.Size())
	contents, err := exec.Command("dpkg-deb", "--contents", deb).CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"./usr/sbin/pop3d", "./usr/sbin/pop3ctl", "./etc/pop3d/pop3d.toml", "./usr/lib/systemd/system/pop3d.service",
		"./usr/share/man/man8/pop3d.8.gz", "./usr/share/man/man8/pop3ctl.8.gz", "./usr/share/man/man5/pop3d.toml.5.gz", "./etc/pam.d/pop3d"} {
		if !strings.Contains(string(contents), want+"\n") {
			t.Errorf("the package lacks %s:\n%s", want, contents)
		}
	}
	conffiles, _ := exec.Command("dpkg-deb", "--info", deb, "conffiles").CombinedOutput()
	if !strings.Contains(string(conffiles), "/etc/pop3d/pop3d.toml") {
		t.Errorf("/etc/pop3d/pop3d.toml is not a conffile: %s", conffiles)
	}

	// A clean root: an empty dpkg database and the account files with root
	// alone. Its folders are world-traversable so that the user pop3d
	// reaches the installed files.
	root, err := os.MkdirTemp("", "pop3d-deb-root-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755)
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log", "etc"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	for f, text := range map[string]string{
		"var/lib/dpkg/status": "", "var/lib/dpkg/available": "",
		"etc/passwd": "root:x:0:0:root:/root:/bin/bash\n", "etc/group": "root:x:0:\n",
		"etc/shadow": "root:*:19000:0:99999:7:::\n", "etc/gshadow": "root:*::\n",
	} {
		mode := os.FileMode(0o644)
		if strings.Contains(f, "shadow") {
			mode = 0o640
		}
		if err := os.WriteFile(filepath.Join(root, f), []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}

	// Install. The root holds no libc or passwd package: their
	// dependencies are the host's.
	installStart := time.Now()
	inst := exec.Command("dpkg", "--root="+root, "--force-script-chrootless", "--force-depends", "--log=/dev/null", "-i", deb)
	if b, err := inst.CombinedOutput(); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, b)
	}
	if b, err := exec.Command("dpkg", "--root="+root, "-s", "pop3d").CombinedOutput(); err != nil || !strings.Contains(string(b), "Status: install ok installed") {
		t.Fatalf("dpkg -s pop3d after the install: %v\n%s", err, b)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	m := regexp.MustCompile(`(?m)^pop3d:x:(\d+):(\d+):[^:]*:/var/lib/pop3d:/usr/sbin/nologin$`).FindStringSubmatch(string(passwd))
	if m == nil {
		t.Fatalf("postinst made no system user pop3d:\n%s", passwd)
	}
	uid, _ := strconv.Atoi(m[1])
	gid, _ := strconv.Atoi(m[2])
	if uid == 0 || uid >= 1000 {
		t.Errorf("pop3d's uid %d is not a system uid", uid)
	}
	fi, err := os.Stat(filepath.Join(root, "var/lib/pop3d"))
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(uid) || fi.Mode().Perm() != 0o750 {
		t.Fatalf("/var/lib/pop3d: %v %v, want owned by uid %d, mode 0750", err, fi, uid)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "var/lib/pop3d")); len(entries) != 0 {
		t.Fatalf("the mail root is not empty after the install: %v", entries)
	}
	conf := filepath.Join(root, "etc/pop3d/pop3d.toml")
	unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/pop3d.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/pop3d",
		"AmbientCapabilities=CAP_NET_BIND_SERVICE\n", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n", "User=pop3d",
		"ExecStart=/usr/sbin/pop3d -config /etc/pop3d/pop3d.toml"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %q", want)
		}
	}

	// The notify socket systemd would hold.
	nsock := filepath.Join(root, "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: nsock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	os.Chown(nsock, uid, gid)

	// Start the installed pop3d as the unit would: the user pop3d, only
	// CAP_NET_BIND_SERVICE, no new privileges; its own network (loopback
	// only) and mounts, where /var/lib/pop3d is the installed one.
	sbin := filepath.Join(root, "usr/sbin")
	asPop3d := []string{"setpriv", "--reuid=" + m[1], "--regid=" + m[2], "--clear-groups", "--no-new-privs",
		"--inh-caps=-all,+net_bind_service", "--ambient-caps=-all,+net_bind_service", "--bounding-set=-all,+net_bind_service"}
	setup := fmt.Sprintf(`set -e
ip link set lo up
mount -t tmpfs -o mode=0755 tmpfs /var/lib
mkdir /var/lib/pop3d
mount --bind %q /var/lib/pop3d
exec "$@"`, filepath.Join(root, "var/lib/pop3d"))
	args := append([]string{"--net", "--mount", "--propagation", "private", "bash", "-c", setup, "pop3d-ns"}, asPop3d...)
	args = append(args, filepath.Join(sbin, "pop3d"), "-config", conf)
	srv := exec.Command("unshare", args...)
	srv.Env = append(os.Environ(), "NOTIFY_SOCKET="+nsock)
	log := &pop3dtest.LogBuffer{}
	srv.Stdout, srv.Stderr = log, log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			srv.Process.Kill()
		}
		if t.Failed() {
			t.Logf("pop3d log:\n%s", log.String())
		}
	}()

	recv := func(what string) map[string]string {
		t.Helper()
		notify.SetReadDeadline(time.Now().Add(60 * time.Second))
		buf := make([]byte, 4096)
		n, err := notify.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s on the notify socket: %v\n%s", what, err, log.String())
		}
		kv := map[string]string{}
		sc := bufio.NewScanner(strings.NewReader(string(buf[:n])))
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), "=")
			kv[k] = v
		}
		return kv
	}
	if kv := recv("READY=1"); kv["READY"] != "1" {
		t.Fatalf("first notification %v, want READY=1", kv)
	}

	// In the service's namespaces, as its user: pop3ctl adds a mailbox and
	// delivers a message; curl reads it over POP3 (port 110) and POP3S (995).
	inNS := func(stdin string, asUser bool, name string, args ...string) string {
		t.Helper()
		full := []string{"--target", strconv.Itoa(srv.Process.Pid), "--net", "--mount"}
		if asUser {
			full = append(full, asPop3d...)
		}
		full = append(append(full, name), args...)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c := exec.CommandContext(ctx, "nsenter", full...)
		c.Stdin = strings.NewReader(stdin)
		b, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, b)
		}
		return string(b)
	}
	ctl := filepath.Join(sbin, "pop3ctl")
	inNS("", true, ctl, "-config", conf, "add", "example.org")
	inNS("correct horse\n", true, ctl, "-config", conf, "add", "alice@example.org", "-password-stdin")
	inNS("Subject: from the package\r\n\r\nhello\r\n", true, ctl, "-config", conf, "deliver", "alice@example.org")
	got := inNS("", false, curl, "-s", "-S", "--max-time", "30", "--user", "alice@example.org:correct horse", "pop3://127.0.0.1:110/1")
	firstSession := time.Since(installStart)
	if !strings.Contains(got, "Subject: from the package") {
		t.Fatalf("curl pop3://127.0.0.1:110/1:\n%s", got)
	}
	t.Logf("dpkg -i to the first POP3 session read: %v", firstSession.Round(time.Millisecond))
	got = inNS("", false, curl, "-s", "-S", "-k", "--max-time", "30", "--user", "alice@example.org:correct horse", "pop3s://127.0.0.1:995/1")
	if !strings.Contains(got, "hello") {
		t.Fatalf("curl pop3s://127.0.0.1:995/1:\n%s", got)
	}

	// The files the service made belong to its user.
	filepath.Walk(filepath.Join(root, "var/lib/pop3d"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
			t.Errorf("%s belongs to uid %d, not pop3d's %d", p, fi.Sys().(*syscall.Stat_t).Uid, uid)
		}
		return nil
	})

	// A reload: RELOADING=1 with the monotonic clock, then READY=1.
	before := monotonicNow(t)
	srv.Process.Signal(syscall.SIGHUP)
	kv := recv("RELOADING=1")
	us, err := strconv.ParseInt(kv["MONOTONIC_USEC"], 10, 64)
	if kv["RELOADING"] != "1" || err != nil || us < before {
		t.Fatalf("after SIGHUP %v, want RELOADING=1 and MONOTONIC_USEC >= %d", kv, before)
	}
	if kv := recv("READY=1 after the reload"); kv["READY"] != "1" {
		t.Fatalf("after the reload %v, want READY=1", kv)
	}
	srv.Process.Signal(syscall.SIGTERM)
	if kv := recv("STOPPING=1"); kv["STOPPING"] != "1" {
		t.Fatalf("after SIGTERM %v, want STOPPING=1", kv)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("pop3d exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pop3d did not stop within 30 s of SIGTERM")
	}

	// Purge removes the configuration and keeps the mail.
	if b, err := exec.Command("dpkg", "--root="+root, "--force-script-chrootless", "--log=/dev/null", "--purge", "pop3d").CombinedOutput(); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, b)
	}
	if _, err := os.Stat(conf); !os.IsNotExist(err) {
		t.Errorf("after purge %s: %v, want it gone", conf, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "var/lib/pop3d")); len(entries) == 0 {
		t.Errorf("purge removed the mail root")
	}
}

// monotonicNow is CLOCK_MONOTONIC in microseconds, systemd's clock.
func monotonicNow(t *testing.T) int64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Sec*1_000_000 + ts.Nsec/1000
}
