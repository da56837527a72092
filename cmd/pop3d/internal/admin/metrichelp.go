package admin

import (
	"bufio"
	"bytes"
	"io"
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

// metricHelp is the HELP text of every metric family pop3d exports under
// its own names (pop3_, smtp_, store_). Each label's values are listed in
// the text. A family missing here is exported with a HELP line naming it
// undocumented, and TestMetricsHelpAndType fails.
var metricHelp = map[string]string{
	// POP3 connections (engine).
	"pop3_connections_current":        "POP3 connections open now, logged in or not.",
	"pop3_connections_total":          "POP3 connections accepted since start.",
	"pop3_connections_refused_total":  "POP3 connections refused, by reason: backlog_full (socketbacklog reached), per_ip (limits.max_conns_per_ip), backlog_timeout (waited pop3.backlog_wait for a slot), shutting_down (the service is stopping), prelogin_per_ip (limits.prelogin_per_ip), prelogin_per_net (limits.prelogin_per_net or prelogin_per_net48).",
	"pop3_connections_shed_total":     "Unauthenticated POP3 connections closed to make room for new clients (pop3.shed_at).",
	"pop3_login_deadline_total":       "POP3 connections closed because they had not logged in within pop3.login_deadline.",
	"pop3_idle_timeouts_total":        "POP3 connections closed after pop3.idle_timeout or pop3.login_timeout of silence.",
	"pop3_panics_total":               "Connections ended by an internal error (a recovered panic) in the engine.",
	"pop3_inbound_overflow_total":     "POP3 connections closed for pipelining more than limits.max_inbound octets or limits.max_pipelined commands.",
	"pop3_stream_pauses_total":        "RETR/TOP replies paused because more than limits.outbound_high_mark octets waited for a slow reader.",
	"pop3_stream_resumes_total":       "Paused RETR/TOP replies resumed once no more than limits.outbound_low_mark octets were left unsent.",
	"pop3_stream_sendfile_total":      "RETR replies sent from the message file with sendfile(2): plaintext connections, messages over 256 KiB with at most 128 lines that begin with '.', the first line not among them (each stuffed with a write of its own).",
	"pop3_stream_copy_total":          "RETR replies over 256 KiB on plaintext connections read, stuffed and written by a stream goroutine of their own: messages with more than 128 lines that begin with '.', or whose first line does, or stored without the store's mark.",
	"pop3_stream_sendfile_busy_total": "RETR replies over 256 KiB that could have gone out from a stream goroutine (sendfile or copy) but were read by the worker pool instead: pop3.threadcount such streams were running.",
	"pop3_lock_renewals_total":        "Mailbox lock lease renewals by logged-in POP3 sessions.",
	"pop3_bytes_received_total":       "Octets received from POP3 clients.",
	"pop3_bytes_sent_total":           "Octets sent to POP3 clients.",
	"pop3_sockets":                    "POP3 session slots by state: in_use (serving a connection), waiting (accepted connections held in the backlog), free (slots open up to socketmax).",
	"pop3_pool_running":               "Workers of the POP3 disk-work pool busy now.",
	"pop3_pool_waiting":               "Tasks waiting for a worker of the POP3 disk-work pool.",
	"pop3_pool_capacity":              "Workers of the POP3 disk-work pool (pop3.threadcount).",
	"pop3_pool_overload_total":        "Commands answered \"server busy\" because pop3.task_queue tasks were already waiting.",
	"pop3_pool_queued_total":          "Tasks that waited for a worker of the POP3 disk-work pool.",
	"pop3_tls_handshakes_total":       "TLS handshakes of POP3 connections (POP3S and STLS), by result: ok, failed.",
	"pop3_tls_connections_current":    "POP3 connections encrypted with TLS now.",

	// POP3 sessions (session/pop3).
	"pop3_commands_total":           "POP3 commands answered, by cmd: USER, PASS, APOP, AUTH, CAPA, STLS, UTF8, LANG, QUIT, STAT, LIST, RETR, DELE, NOOP, RSET, TOP, UIDL, other (anything else); and by status: ok (+OK), err (-ERR).",
	"pop3_command_duration_seconds": "Time to answer a POP3 command, by group: auth (USER, PASS, APOP, AUTH), retr (RETR, TOP), list (STAT, LIST, UIDL), update (QUIT), other.",
	"pop3_auth_total":               "POP3 login attempts, by mech: user (USER/PASS), apop, plain, login, cram-md5, ntlm, or the lower-case name of another SASL mechanism offered; and by result: ok, fail (bad credentials or refused), temp (the authentication service could not answer), busy (the auth queue was full), delay (good credentials refused with [LOGIN-DELAY]).",
	"pop3_sessions_logged_in":       "POP3 sessions logged in now (TRANSACTION state until the connection ends and the mailbox is released).",
	"pop3_messages_retrieved_total": "Messages sent whole by RETR.",
	"pop3_messages_top_total":       "Messages whose header and first body lines were sent by TOP (not counted in pop3_messages_retrieved_total).",
	"pop3_messages_deleted_total":   "Messages deleted by QUIT after DELE.",
	"pop3_retr_bytes_total":         "Octets of the messages sent by RETR, before dot-stuffing.",
	"pop3_session_panics_total":     "POP3 commands that ended in an internal error (a recovered panic) in the session.",

	// Authentication (session/auth).
	"pop3_auth_penalty_total":          "Failed logins that were delayed by the per-address penalty (auth.penalty).",
	"pop3_auth_banned_total":           "Addresses banned after auth.ban_after failures within auth.ban_window.",
	"pop3_auth_throttled_total":        "Logins refused without a password check because their address had more checks waiting than its penalty allows.",
	"pop3_auth_banned_addresses":       "Addresses banned now.",
	"pop3_auth_queue_running":          "Password checks running now in the auth queue (auth.hash_workers).",
	"pop3_auth_queue_waiting":          "Password checks waiting in the auth queue (at most auth.queue per line).",
	"pop3_auth_queue_checks_total":     "Password checks done by the auth queue.",
	"pop3_auth_queue_refused_total":    "Password checks refused with -ERR [SYS/TEMP] because the auth queue was full.",
	"pop3_auth_queue_pushed_out_total": "Waiting password checks that gave their place in a full auth queue line to a check of a network holding fewer places (also counted as refused).",
	"pop3_auth_queue_panics_total":     "Password checks that ended in an internal error (a recovered panic).",

	// SMTP and delivery (engine/smtpnet, session/smtp, session/delivery).
	"smtp_connections_refused_total":  "SMTP/LMTP connections refused with 421 (smtp.max_connections or a per-address or per-network limit).",
	"smtp_starttls_failed_total":      "SMTP STARTTLS handshakes that failed (the session then ends).",
	"smtp_sessions_total":             "SMTP/LMTP sessions opened.",
	"smtp_messages_received_total":    "Messages accepted into the queue by SMTP/LMTP.",
	"smtp_rcpt_total":                 "RCPT TO commands, by result: ok (accepted), unknown (no such mailbox), relay (a domain not served), limit (smtp.max_recipients reached), error (the store could not answer).",
	"smtp_data_total":                 "SMTP DATA/BDAT transfers, by result: ok (queued), too_big (over smtp.max_message_size), over_quota (a recipient's quota), error (could not be queued).",
	"smtp_deliveries_total":           "Delivery attempts from the queue to mailboxes, per recipient, by result: delivered, deferred (to be retried), failed (permanently; a non-delivery report follows).",
	"smtp_ndr_total":                  "Non-delivery reports made.",
	"smtp_badmail_total":              "Messages moved to Badmail (their non-delivery report could not be sent).",
	"smtp_queue_depth":                "Messages in the mail queue, as last counted by the queue's leader.",
	"smtp_queue_leader":               "1 when this server is the queue's leader (it alone reports smtp_queue_depth), else 0.",
	"smtp_delivery_latency_seconds":   "Time from a message's arrival in the queue to its delivery to a mailbox.",
	"smtp_possible_duplicates_total":  "Queue entries taken over after a crash whose delivery may have happened already (at most one extra copy each).",
	"smtp_tls_handshake_failed_total": "TLS handshakes of the implicit-TLS submission listener that failed (the connection is closed).",

	// Submission (session/smtp).
	"smtp_auth_total":                "SMTP AUTH attempts on the submission listeners, by result: ok, fail (bad credentials), temp (the authentication service could not answer), refused (banned, throttled, or plaintext AUTH without TLS).",
	"smtp_submission_messages_total": "Messages accepted from authenticated users on the submission listeners.",
	"smtp_submission_refused_total":  "Submissions refused, by reason: sender (MAIL FROM not the user's address or alias, 553), from_header (a From: address not the user's, 553), rate (submission.max_messages_per_hour, 450), no_auth (MAIL before AUTH, 530).",
	"smtp_submission_rcpt_total":     "Recipients of submitted messages, by kind: local (a served domain, delivered locally), remote (queued for the outbound agent).",

	// Outbound delivery agent (session/delivery over session/outbound).
	"smtp_outbound_deliveries_total":          "Outbound delivery attempts, per recipient, by result: delivered (the remote server answered 250), deferred (to be retried), failed (permanently; a report goes to the sender).",
	"smtp_outbound_ndr_total":                 "Delivery status reports (RFC 3464) put into senders' mailboxes for outbound mail.",
	"smtp_outbound_badmail_total":             "Outbound messages moved to Badmail (their report could not be delivered).",
	"smtp_outbound_possible_duplicates_total": "Outbound entries taken over after a crash whose delivery may have happened already (at most one extra copy each).",
	"smtp_outbound_queue_depth":               "Messages in the outbound queue, as last counted by the queue's leader.",
	"smtp_outbound_queue_leader":              "1 when this server is the outbound queue's leader (it alone reports smtp_outbound_queue_depth), else 0.",
	"smtp_outbound_delivery_latency_seconds":  "Time from a message's arrival in the outbound queue to its acceptance by the remote server.",
	"smtp_outbound_connections_total":         "Connections to remote mail servers, by result: ok, failed.",
	"smtp_outbound_starttls_total":            "Opportunistic STARTTLS with remote mail servers, by result: ok, failed (the message is retried in plaintext once).",
	"smtp_outbound_lookups_total":             "Destination look-ups, by result: mx (MX records), implicit_mx (no MX: the domain's own address), null_mx (RFC 7505: fails at once), no_domain (the domain does not exist), error (the resolver failed; retried).",
	"smtp_outbound_dkim_total":                "DKIM signatures of outbound messages, by result: signed, failed (sent unsigned).",

	// Policies (session/pop3).
	"pop3_messages_expired_total": "Messages deleted by the EXPIRE retention policy (at QUIT and by the sweeper).",

	// File store (store/filestore).
	"store_lock_takeovers_total":       "Stale mailbox locks (of a dead or expired holder) taken over.",
	"store_lock_lost_total":            "Sessions that found their mailbox lock taken over by another.",
	"store_leftovers_removed_total":    "Crash leftovers removed, by kind: tmp (unfinished writes), lock (stale lock files), restored (messages put back from an interrupted deletion), trash (messages left deleted).",
	"store_password_upgrades_total":    "Stored password hashes rehashed with the current auth.hash settings at login.",
	"store_hash_worker_starts_total":   "Password hash worker processes started (auth.hash_processes).",
	"store_hash_worker_failures_total": "Password checks a hash worker process failed to answer (it died: the login got a temporary failure), or that found no worker able to start (the check ran in pop3d).",
	"store_auth_cache_total":           "Password checks answered by the authentication cache (auth.cache_ttl), by result: hit, miss.",
}

// helpFor returns the HELP text of a family: from metricHelp, or, for the
// Go runtime's and the process's own series (go_, process_), their name
// in words with where it comes from.
func helpFor(family string) (string, bool) {
	if h, ok := metricHelp[family]; ok {
		return h, true
	}
	for _, p := range []struct{ prefix, source string }{
		{"go_memstats_", "Go runtime memory statistics (runtime.MemStats)"},
		{"go_", "Go runtime (runtime/metrics)"},
		{"process_", "The process, from /proc"},
	} {
		if rest, ok := strings.CutPrefix(family, p.prefix); ok {
			return p.source + ": " + strings.ReplaceAll(rest, "_", " ") + ".", true
		}
	}
	return "", false
}

// writeMetrics writes every metric in the Prometheus text format, each
// family with its # HELP and # TYPE lines. VictoriaMetrics/metrics writes
// the TYPE line and an empty HELP line (ExposeMetadata); the help text is
// filled in here.
func writeMetrics(w io.Writer) error {
	var buf bytes.Buffer
	metrics.WritePrometheus(&buf, true)
	out := bufio.NewWriter(w)
	for line := range strings.Lines(buf.String()) {
		if fam, ok := strings.CutPrefix(line, "# HELP "); ok {
			fam = strings.TrimSpace(fam)
			if i := strings.IndexByte(fam, ' '); i < 0 {
				h, ok := helpFor(fam)
				if !ok {
					h = "undocumented"
				}
				out.WriteString("# HELP " + fam + " " + escapeHelp(h) + "\n")
				continue
			}
		}
		out.WriteString(line)
	}
	return out.Flush()
}

// escapeHelp escapes a HELP text as the text format asks: backslash and
// line feed.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func init() { metrics.ExposeMetadata(true) }
