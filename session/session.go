// Package session holds the contract between the network engine and the
// protocol state machines (session/pop3 and friends). A protocol session has
// no sockets: the engine splits input into lines, hands them over one at a
// time in order, and writes what the session returns.
package session

import (
	"io"
	"time"
)

// ConnInfo describes the connection a session serves.
type ConnInfo struct {
	ID     uint64 // connection id, unique in this process; appears on every log line
	Remote string // remote address, ip:port
	Local  string // local address, ip:port
	TLS    bool   // the link is encrypted (implicit TLS, or after STLS)
}

// Reply is what a session returns for one input line (or for the greeting).
// The engine writes Out, then streams Body (if any) to the client, then acts
// on the flags. Body is already in wire form (for RETR/TOP: dot-stuffed and
// ending with ".\r\n"); the engine reads it in chunks off the event loop and
// closes it when done or when the connection goes away.
type Reply struct {
	Out  []byte
	Body io.ReadCloser
	// Delay postpones writing the reply (for example after a failed login).
	// The engine waits without blocking its event loop or a worker.
	Delay time.Duration
	// Close: close the connection once everything has been sent.
	Close bool
	// StartTLS: after Out has been sent, discard any input already
	// buffered and start a TLS server handshake on the connection.
	StartTLS bool
	// Authenticated: the session has left the authorization state; the
	// engine switches from the login timeout to the idle timeout.
	Authenticated bool
	// Pending, when set, means the command is not over: its slow part (a
	// password hash) was handed to a bounded queue of its own, the auth
	// queue, so that it holds no command worker. The other fields are
	// ignored. The engine keeps the command in flight (pipelined lines
	// wait) and calls Pending once, with resume; Pending must not block.
	// The session arranges for resume to be called exactly once, from any
	// goroutine, with finish; the engine then calls finish as it calls
	// Handle (on a worker, never concurrently with another method) and
	// writes the Reply finish returns, which may itself be Pending.
	Pending func(resume func(finish func() Reply))
}

// FileBody is implemented by a Reply.Body whose wire form is, when
// Sendable says so, Size octets sent from an open file, then Trailer: the
// engine may then send it with SendFile instead of reading it (a RETR of
// a message whose few lines to byte-stuff the store recorded). Read still
// gives the whole wire form; a body is either read or sent, never both.
// Read, SendFile and Close may be called from different goroutines.
type FileBody interface {
	io.ReadCloser
	// Size is the octets SendFile sends in all, once Sendable said true;
	// before, the octets of the file.
	Size() int64
	// Sendable reports whether the body may be sent with SendFile. It may
	// cost a system call the first time (off the event loop), then
	// nothing.
	Sendable() bool
	// SendFile sends up to n octets, from where the last call stopped,
	// to the socket sock (sendfile(2), and a write of each stuffed '.'),
	// and returns octets sent and the error (0 octets and no error: the
	// file is over; EAGAIN: the socket is full).
	SendFile(sock, n int) (int, error)
	// Trailer is what follows the file: ".\r\n".
	Trailer() []byte
}

// Session is one protocol session. The engine calls its methods from one
// goroutine at a time (the event loop or a worker), never concurrently, and
// never calls Handle again before the previous Reply was fully written.
type Session interface {
	// Greeting returns the first reply, sent when the connection is admitted.
	Greeting() Reply
	// Inline reports whether line can be handled on the event loop: true
	// only when Handle will do no disk I/O, no slow crypto and no blocking.
	Inline(line []byte) bool
	// Handle processes one input line, without its line ending (CRLF or
	// bare LF already removed). line is only valid during the call.
	Handle(line []byte) Reply
	// LineTooLong is called instead of Handle when a line exceeded the
	// engine's line length limit; the engine discards the rest of that
	// line.
	LineTooLong() Reply
	// SetTLS tells the session its link is now encrypted (after StartTLS).
	SetTLS()
	// Close ends the session when the connection is gone, whatever the
	// state: a session that did not reach the update state deletes nothing
	// and releases the mailbox. It may do disk I/O; the engine calls it
	// off the event loop. Safe to call more than once.
	Close()
}

// Factory makes a new session for a connection.
type Factory func(ci ConnInfo) Session

// LineLimiter is implemented by sessions whose line length limit depends on
// their state: a POP3 SASL exchange accepts continuation lines longer than
// commands (RFC 5034 section 4). The engine splits input at the larger of
// its two limits (limits.max_line, limits.max_auth_line) and, when a line's
// turn comes, asks the session which applies to it; 0 means
// limits.max_line. A longer line gets LineTooLong instead of Handle.
type LineLimiter interface {
	LineLimit() int
}

// Refuser is implemented by sessions that must know when the engine
// answered a line itself instead of calling Handle (every worker busy and
// the task queue full: "-ERR [SYS/TEMP] server busy"). A POP3 SASL
// exchange in progress is then abandoned, so that the client's next line
// is read as a command, as the -ERR told it. Refused runs on the event
// loop, never concurrently with another method, and must not block.
type Refuser interface {
	Refused()
}

// Renewer is implemented by sessions that hold a lease that must be
// renewed while the connection is open, idle or streaming a reply (a POP3
// session's mailbox lock, whose lease other servers sharing the store
// honour). The engine's ticker asks RenewDue for every open connection
// about once a second; when it reports true the engine calls Renew on a
// worker. Both may run concurrently with the session's other methods and
// must be safe for that; RenewDue must be cheap and must report true only
// once per renewal (until Renew ran).
type Renewer interface {
	RenewDue(now time.Time) bool
	Renew()
}
