package pop3

import (
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// knownCommands are the values of the cmd label of pop3_commands_total; any
// other input is counted as "other", so the label set stays bounded.
var knownCommands = []string{
	"USER", "PASS", "APOP", "AUTH", "CAPA", "STLS", "QUIT",
	"STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL", "UTF8", "LANG",
}

const otherCommand = "other"

type cmdCounters struct{ ok, err *metrics.Counter }

// Metrics of the POP3 state machine, on the global VictoriaMetrics set:
//
//	pop3_commands_total{cmd="USER|PASS|...|other",status="ok|err"}
//	pop3_auth_total{mech="user|apop|plain|login|cram-md5|ntlm|...",result="ok|fail|temp|busy"} (busy: the auth queue was full)
//	pop3_messages_retrieved_total, pop3_messages_deleted_total, pop3_retr_bytes_total
//	pop3_messages_top_total                 messages whose header and first lines TOP sent
//	pop3_sessions_logged_in                 sessions in the TRANSACTION state (gauge)
//	pop3_messages_expired_total             messages EXPIRE deleted (at QUIT and by SweepExpired)
//	pop3_command_duration_seconds{group="auth|retr|list|update|other"}
//	pop3_session_panics_total
var (
	commandCounters = func() map[string]cmdCounters {
		m := make(map[string]cmdCounters, len(knownCommands)+1)
		for _, c := range append(knownCommands, otherCommand) {
			m[c] = cmdCounters{
				ok:  metrics.GetOrCreateCounter(fmt.Sprintf(`pop3_commands_total{cmd=%q,status="ok"}`, c)),
				err: metrics.GetOrCreateCounter(fmt.Sprintf(`pop3_commands_total{cmd=%q,status="err"}`, c)),
			}
		}
		return m
	}()
	messagesRetrieved = metrics.GetOrCreateCounter(`pop3_messages_retrieved_total`)
	messagesDeleted   = metrics.GetOrCreateCounter(`pop3_messages_deleted_total`)
	messagesExpired   = metrics.GetOrCreateCounter(`pop3_messages_expired_total`)
	retrBytes         = metrics.GetOrCreateCounter(`pop3_retr_bytes_total`)
	messagesTopped    = metrics.GetOrCreateCounter(`pop3_messages_top_total`)
	sessionsLoggedIn  = metrics.GetOrCreateGauge(`pop3_sessions_logged_in`, nil)
	sessionPanics     = metrics.GetOrCreateCounter(`pop3_session_panics_total`)
	durationGroups    = func() map[string]*metrics.PrometheusHistogram {
		m := map[string]*metrics.PrometheusHistogram{}
		for _, g := range []string{"auth", "retr", "list", "update", "other"} {
			m[g] = metrics.GetOrCreatePrometheusHistogram(fmt.Sprintf(`pop3_command_duration_seconds{group=%q}`, g))
		}
		return m
	}()
)

// commandGroup is the group label of pop3_command_duration_seconds.
func commandGroup(cmd string) string {
	switch cmd {
	case "USER", "PASS", "APOP", "AUTH":
		return "auth"
	case "RETR", "TOP":
		return "retr"
	case "STAT", "LIST", "UIDL":
		return "list"
	case "QUIT":
		return "update"
	}
	return "other"
}

func countCommand(cmd string, ok bool, d time.Duration) {
	c, found := commandCounters[cmd]
	if !found {
		c = commandCounters[otherCommand]
		cmd = otherCommand
	}
	if ok {
		c.ok.Inc()
	} else {
		c.err.Inc()
	}
	durationGroups[commandGroup(cmd)].Update(d.Seconds())
}

// countAuth counts one login attempt. mech is lower-case and bounded: the
// fixed mechanisms plus the names of Authenticator.Extra.
func countAuth(mech, result string) {
	metrics.GetOrCreateCounter(fmt.Sprintf(`pop3_auth_total{mech=%q,result=%q}`, mech, result)).Inc()
}
