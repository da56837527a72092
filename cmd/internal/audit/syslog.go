package audit

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"os/user"
	"strings"
)

// EnvSyslog names the variable that points pop3ctl's audit lines at
// another syslog socket than /dev/log.
const EnvSyslog = "POP3CTL_SYSLOG"

// Local is pop3ctl's logger of audit lines: to syslog (facility authpriv,
// tag pop3ctl), or to fallback when no syslog socket answers. Each line
// carries the same fields as pop3d's.
func Local(fallback io.Writer) *slog.Logger {
	var w *syslog.Writer
	var err error
	if p := os.Getenv(EnvSyslog); p != "" {
		w, err = syslog.Dial("unixgram", p, syslog.LOG_AUTHPRIV|syslog.LOG_NOTICE, "pop3ctl")
	} else {
		w, err = syslog.New(syslog.LOG_AUTHPRIV|syslog.LOG_NOTICE, "pop3ctl")
	}
	if err != nil {
		return slog.New(slog.NewTextHandler(prefixWriter{w: fallback, prefix: "pop3ctl: audit: "}, nil))
	}
	return slog.New(slog.NewTextHandler(syslogWriter{w}, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{} // syslog stamps the time
			}
			return a
		},
	}))
}

// LocalWho is the person running pop3ctl: the login name, with the sudo
// caller ("root (sudo alice)").
func LocalWho() string {
	name := "uid " + fmt.Sprint(os.Getuid())
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if s := os.Getenv("SUDO_USER"); s != "" && s != name {
		name += " (sudo " + s + ")"
	}
	return name
}

// LocalFrom is where a pop3ctl change comes from.
func LocalFrom() string { return fmt.Sprintf("local pid %d", os.Getpid()) }

type syslogWriter struct{ w *syslog.Writer }

func (s syslogWriter) Write(p []byte) (int, error) {
	if err := s.w.Notice(strings.TrimRight(string(p), "\n")); err != nil {
		return 0, err
	}
	return len(p), nil
}

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := p.w.Write(append([]byte(p.prefix), bytes.TrimRight(b, "\n")...)); err != nil {
		return 0, err
	}
	if _, err := p.w.Write([]byte("\n")); err != nil {
		return 0, err
	}
	return len(b), nil
}
