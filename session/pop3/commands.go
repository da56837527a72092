package pop3

import "github.com/pop3svc/pop3svc/session"

// The commands, one file per group:
//
//	AUTHORIZATION (RFC 1939 section 4)  user_pass.go  apop.go  auth_sasl.go  stls.go, and login.go they share
//	TRANSACTION (RFC 1939 section 5)    stat_list.go  retr_top.go  dele_rset.go  uidl.go, msgnum.go for arguments
//	UPDATE (RFC 1939 section 6)         quit.go
//	any state                           capa.go (CAPA, RFC 2449), NOOP below

// handleAuthorization runs a command in the AUTHORIZATION state (RFC 1939
// section 4). wasUser is true when the previous command was a successful USER.
func (s *Session) handleAuthorization(cmd, arg string, wasUser bool) session.Reply {
	switch cmd {
	case "CAPA":
		return s.capa(arg)
	case "NOOP":
		// RFC 1939 lists NOOP for TRANSACTION only; answering it here is
		// harmless and helps clients that probe the link.
		return line(okPrefix)
	case "QUIT":
		return s.quitAuthorization()
	case "STLS":
		return s.stls(arg)
	case "USER":
		return s.userCmd(arg)
	case "PASS":
		return s.passCmd(arg, wasUser)
	case "APOP":
		return s.apopCmd(arg)
	case "AUTH":
		return s.authCmd(arg)
	case "STAT", "LIST", "RETR", "DELE", "RSET", "TOP", "UIDL":
		return s.bad(errWrongState)
	}
	return s.bad(errUnknownCommand)
}

// handleTransaction runs a command in the TRANSACTION state (RFC 1939 section 5).
func (s *Session) handleTransaction(cmd, arg string) session.Reply {
	if s.lost.Load() {
		// The lock lapsed and another session took the mailbox over:
		// serve nothing more, delete nothing.
		if cmd == "QUIT" {
			s.state = stateUpdate
			s.nextRenew.Store(0)
			s.mbox.Close()
			s.log.Warn("logout after the mailbox lock was lost; nothing deleted")
			r := errorReply(errLockLost)
			r.Close = true
			return r
		}
		return errorReply(errLockLost)
	}
	switch cmd {
	case "STAT":
		return s.stat(arg)
	case "LIST":
		return s.list(arg)
	case "UIDL":
		return s.uidl(arg)
	case "RETR":
		return s.retr(arg)
	case "TOP":
		return s.top(arg)
	case "DELE":
		return s.dele(arg)
	case "NOOP":
		if arg != "" {
			return errorReply(errSyntax)
		}
		return line(okPrefix)
	case "RSET":
		return s.rset(arg)
	case "CAPA":
		return s.capa(arg)
	case "QUIT":
		return s.quit()
	case "USER", "PASS", "APOP", "AUTH", "STLS":
		return errorReply(errWrongState)
	}
	return errorReply(errUnknownCommand)
}
