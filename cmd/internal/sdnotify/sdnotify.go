// Package sdnotify tells systemd about the service's state: the
// sd_notify(3) protocol of a Type=notify unit, spoken directly.
//
// systemd passes the path of a datagram socket in $NOTIFY_SOCKET (a file
// path, or "@name" for the abstract namespace). Each state change is one
// datagram of newline-separated VAR=value assignments:
//
//	READY=1                              start-up finished
//	RELOADING=1 + MONOTONIC_USEC=<µs>    a reload began (Type=notify-reload
//	                                     and newer systemd match the two)
//	READY=1                              the reload finished
//	STOPPING=1                           the drain began
//	STATUS=<text>                        free text, shown by systemctl status
//
// Without $NOTIFY_SOCKET (not started by systemd) every call does nothing.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Notifier sends state changes to one socket.
type Notifier struct {
	addr *net.UnixAddr // nil: not under systemd
}

// FromEnv returns the notifier of $NOTIFY_SOCKET. The variable is removed
// from the environment so that child processes do not speak for us.
func FromEnv() *Notifier {
	p := os.Getenv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	return New(p)
}

// New returns a notifier for the socket at path ("" does nothing; a
// leading '@' names the abstract namespace).
func New(path string) *Notifier {
	if path == "" {
		return &Notifier{}
	}
	name := path
	if strings.HasPrefix(name, "@") {
		name = "\x00" + name[1:]
	}
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}
}

// Enabled reports whether a socket was given.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Send sends the assignments as one datagram.
func (n *Notifier) Send(lines ...string) error {
	if !n.Enabled() {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: cannot reach %q: %w", n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		return fmt.Errorf("sd_notify: cannot write to %q: %w", n.addr.Name, err)
	}
	return nil
}

// Ready reports that start-up, or a reload, finished.
func (n *Notifier) Ready(status string) error {
	if status == "" {
		return n.Send("READY=1")
	}
	return n.Send("READY=1", "STATUS="+status)
}

// Reloading reports that a reload began, stamped with CLOCK_MONOTONIC as
// systemd's Type=notify-reload requires.
func (n *Notifier) Reloading() error {
	return n.Send("RELOADING=1", fmt.Sprintf("MONOTONIC_USEC=%d", monotonicUsec()))
}

// Stopping reports that the service is draining to stop.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// monotonicUsec is CLOCK_MONOTONIC in microseconds, the clock systemd
// compares the reload's stamp with.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Sec*1_000_000 + ts.Nsec/1000
}
