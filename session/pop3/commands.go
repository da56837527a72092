package pop3

import "github.com/pop3svc/pop3svc/session"

// The commands, one file per group:
//
//	AUTHORIZATION (RFC 1939 section 4)  user_pass.go  apop.go  auth_sasl.go  stls.go, and login.go they share
//	TRANSACTION (RFC 1939 section 5)    stat_list.go  retr_top.go  dele_rset.go  uidl.go, msgnum.go for arguments
//	UPDATE (RFC 1939 section 6)         quit.go
//	AUTHORIZATION and TRANSACTION       capa.go (CAPA, RFC 2449)

// stateSet is a set of session states.
type stateSet uint8

func states(ss ...state) stateSet {
	var set stateSet
	for _, s := range ss {
		set |= 1 << s
	}
	return set
}

func (set stateSet) has(s state) bool { return set&(1<<s) != 0 }

// commandStates lists every command the service knows and the states it is
// valid in, as the seed's tables and the RFCs give them:
//
//	USER PASS APOP   AUTHORIZATION                RFC 1939 section 7 (the seed's Authorization State table)
//	AUTH             AUTHORIZATION                RFC 5034 section 4
//	STLS             AUTHORIZATION                RFC 2595 section 4
//	STAT LIST RETR DELE NOOP RSET TOP UIDL
//	                 TRANSACTION                  RFC 1939 sections 5, 7 (the seed's Transaction State table)
//	CAPA             AUTHORIZATION, TRANSACTION   RFC 2449 section 5
//	QUIT             AUTHORIZATION, TRANSACTION   RFC 1939 sections 4, 6 (the seed's Update State table)
//	UTF8             AUTHORIZATION                RFC 6856 section 2
//	LANG             AUTHORIZATION, TRANSACTION   RFC 6856 section 3
//
// A known command in another state gets errWrongState; anything else
// errUnknownCommand. PASS is further valid only right after a successful
// USER (errNoUser), and STLS only before any USER (errNoSTLS).
var commandStates = map[string]stateSet{
	"USER": states(stateAuthorization),
	"PASS": states(stateAuthorization),
	"APOP": states(stateAuthorization),
	"AUTH": states(stateAuthorization),
	"STLS": states(stateAuthorization),
	"STAT": states(stateTransaction),
	"LIST": states(stateTransaction),
	"RETR": states(stateTransaction),
	"DELE": states(stateTransaction),
	"NOOP": states(stateTransaction),
	"RSET": states(stateTransaction),
	"TOP":  states(stateTransaction),
	"UIDL": states(stateTransaction),
	"CAPA": states(stateAuthorization, stateTransaction),
	"QUIT": states(stateAuthorization, stateTransaction),
	"UTF8": states(stateAuthorization),
	"LANG": states(stateAuthorization, stateTransaction),
}

// admit checks cmd against commandStates in the session's state; a nil
// error lets the command run.
func (s *Session) admit(cmd string) *Error {
	set, known := commandStates[cmd]
	switch {
	case !known:
		return errUnknownCommand
	case !set.has(s.state):
		return errWrongState
	}
	return nil
}

// handleAuthorization runs a command in the AUTHORIZATION state (RFC 1939
// section 4). wasUser is true when the previous command was a successful USER.
func (s *Session) handleAuthorization(cmd, arg string, wasUser bool) session.Reply {
	if err := s.admit(cmd); err != nil {
		return s.bad(err)
	}
	switch cmd {
	case "CAPA":
		return s.capa(arg)
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
	case "UTF8":
		return s.utf8Cmd(arg)
	case "LANG":
		return s.langCmd(arg)
	}
	return s.bad(errUnknownCommand) // admitted here but not served: commandStates is wrong
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
	if err := s.admit(cmd); err != nil {
		return errorReply(err)
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
	case "LANG":
		return s.langCmd(arg)
	}
	return errorReply(errUnknownCommand) // admitted but not served: commandStates is wrong
}
