// Package audit writes one log line per administrative change, the same
// from every door: pop3ctl, the browser console and the admin API.
//
//	level=INFO msg=audit via=console who=anonymous from=127.0.0.1:50412 action=quota object=alice@example.org old=none new=50MB
//
// via is the door (pop3ctl, console, api); who the person (pop3ctl: the
// login name, and the sudo caller when there is one; console and API: the
// user an authenticating proxy names in X-Remote-User, else "anonymous");
// from where the request came (pop3ctl: "local pid N"; HTTP: the client
// address); action, object and old → new what changed. A password is never
// logged: its old and new values are "(hidden)".
//
// pop3d's lines go to its log (standard error, the journal under
// systemd). pop3ctl runs apart from the service: its lines go to syslog
// (the socket /dev/log, or $POP3CTL_SYSLOG; the journal on Debian, tag
// pop3ctl), and to standard error when no syslog socket answers.
package audit

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
)

// Hidden stands for a secret's value.
const Hidden = "(hidden)"

// Entry is one administrative change.
type Entry struct {
	Via    string // pop3ctl | console | api
	Who    string
	From   string
	Action string // add, delete, rename, lock, unlock, password, quota, set, reload, restore, ...
	Object string // the domain, mailbox or key
	Old    string
	New    string
}

// Record writes e as one line at level INFO (logging >= 3). Empty old or
// new values are written as "-".
func Record(log *slog.Logger, e Entry) {
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	log.LogAttrs(context.Background(), slog.LevelInfo, "audit",
		slog.String("via", e.Via), slog.String("who", dash(e.Who)), slog.String("from", dash(e.From)),
		slog.String("action", e.Action), slog.String("object", dash(e.Object)),
		slog.String("old", dash(e.Old)), slog.String("new", dash(e.New)))
}

// ProxyUserHeader names the header in which an authenticating proxy in
// front of the admin listener passes the user it let in.
const ProxyUserHeader = "X-Remote-User"

// FromRequest fills Via, Who and From for an HTTP request.
func FromRequest(via string, r *http.Request) Entry {
	who := strings.TrimSpace(r.Header.Get(ProxyUserHeader))
	if who == "" || len(who) > 128 || strings.ContainsAny(who, "\r\n") {
		who = "anonymous"
	}
	return Entry{Via: via, Who: who, From: r.RemoteAddr}
}
