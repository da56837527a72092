// Package engine is the POP3 service's network engine (the seed's
// Pop3svc.exe: listener, socket pool, thread pool and I/O contexts). It
// serves session.Session state machines over gnet's event loops and runs
// their slow work on an ants worker pool.
//
// # Flow of a connection
//
// gnet accepts on every pop3.listen address (one engine, several
// listeners). OnOpen asks the socket pool for admission and either greets,
// holds the connection silent in the backlog, or refuses it with
// "-ERR [SYS/TEMP]". Input is split into lines (CRLF or bare LF, RFC 1939
// §3) by a resumable splitter capped at the larger of limits.max_line and
// limits.max_auth_line; when a line's turn comes, the engine applies the
// session's present limit (session.LineLimiter: max_auth_line inside a
// SASL exchange, limits.max_line otherwise). A longer line gets
// session.LineTooLong and is discarded up to its end.
// One command is in flight per connection; pipelined lines (RFC 2449
// PIPELINING) wait in order in one buffer of the connection context (each
// line its octets behind a 4-octet length), bounded by limits.max_inbound
// octets and limits.max_pipelined lines: thousands of commands in one
// write are answered in order. Beyond either bound the rest of the input
// is discarded, what was queued is answered, then the client gets
// "-ERR [SYS/PERM] too many pipelined commands" and the connection closes.
//
// A line the session calls Inline is handled on the event loop; any other
// goes to the worker pool (pop3.threadcount, non-blocking: when it is full
// the command is answered "-ERR [SYS/TEMP] server busy, try again" and the
// loop never stalls). Every write happens on the connection's event loop
// (synchronous Write there; workers hand results back with
// EventLoop().Execute), so replies can never overtake each other. A
// Reply.Pending (a password hash handed to the auth queue) keeps the
// command in flight without a worker: the engine passes it a resume
// function, and the command's finish runs on a worker once the queue is
// done with it (on the queue's goroutine when every worker is busy), its
// reply written like any other. A reply
// body is read in 256 KiB chunks on a worker and written on the loop; above
// limits.outbound_high_mark queued octets the stream parks until the
// buffer falls to limits.outbound_low_mark (pop3_stream_pauses_total,
// pop3_stream_resumes_total). A body that is a file (session.FileBody: a
// RETR of a message) over one chunk goes out on a plaintext connection
// from a goroutine of its own instead, on a duplicate of the socket
// registered with Go's poller, at most pop3.threadcount of them at once:
// with sendfile(2) when the store recorded its few lines to byte-stuff
// (or none), else read, stuffed and written from one chunk buffer; see
// sendfile.go (pop3_stream_sendfile_total, pop3_stream_copy_total,
// pop3_stream_sendfile_busy_total). Reply.Delay uses one runtime
// timer per delayed reply (failed logins only). Reply.Close closes the
// connection only once gnet's outbound buffer is empty, since gnet's own
// close drops what it cannot write at once. A short poll (the waker, one
// goroutine, idle while nothing waits) looks at parked streams and at
// connections waiting to drain, because gnet has no "drained" event.
//
// Panics in session calls are recovered: the client gets
// "-ERR [SYS/TEMP] internal error", the connection is closed and
// pop3_panics_total counts it.
//
// # Timeouts
//
// Every connection has an atomic last-activity time in a sharded
// registry, swept once a second from gnet's OnTick: pop3.login_timeout
// (silence) and pop3.login_deadline (the whole time since connect,
// whatever the client sends: "-ERR [SYS/TEMP] login not completed in
// time") apply until a reply carries Authenticated, pop3.idle_timeout after
// (RFC 1939 §3: at least ten minutes). Input, replies and output drained
// to the client all count as activity, so a long RETR to a slow reader
// survives; before expiring a connection with output still queued, the
// engine also asks the kernel (SIOCOUTQNSD) whether any of it left since
// the last check, so a reply draining from a large socket buffer after
// QUIT is not cut short. On expiry the client gets "-ERR idle timeout" and the
// connection closes. The clock is an option (Options.Now) and Sweep runs
// the sweep on demand, for tests.
//
// # The socket pool
//
// The seed's four settings keep their names and get these meanings:
//
//   - socketmax: connections served at once (greeted and in session).
//   - socketbacklog: connections accepted beyond socketmax and held silent
//     (no greeting, so the client waits) in FIFO order until a slot frees;
//     each may wait pop3.backlog_wait and send limits.backlog_max_input
//     octets, then it is refused. Beyond socketmax+socketbacklog new
//     connections get "-ERR [SYS/TEMP] too many connections" at once.
//     limits.max_conns_per_ip (0: off) caps connections per address.
//   - socketmin: connection contexts (the engine's per-connection state)
//     prepared at start. A prepared context is a bare struct: its line
//     buffer is allocated on first use and kept when the context returns
//     to the free list, so a reused context splits lines without
//     allocating again (the session itself is made per connection).
//   - socketthreshold: when the free list of prepared contexts falls to
//     this many, that many more are prepared (never more than socketmax in
//     use plus free); a finished connection's context returns to the list
//     while it holds fewer than socketmin+socketthreshold.
//
// Unauthenticated connections (served or waiting) are counted in one map
// keyed by address and network (prelogin.go): limits.prelogin_per_ip,
// prelogin_per_net (IPv4 /24, IPv6 /64) and prelogin_per_net48 cap them.
// From pop3.shed_at percent of socketmax served, a new connection from a
// network other than the one (IPv4 /24, IPv6 /48) holding the most served
// unauthenticated connections sheds that network's oldest, when it holds
// at least two and more than twice the newcomer's network; with the pool full
// the newcomer takes the victim's slot at once. Logged-in sessions are
// never shed. A heap of networks by count makes the choice O(log n).
// Refusals on an implicit-TLS listener close the connection without a
// plaintext reply (RFC 8314 clients would read it as a bad record).
//
// pop3.listen_backlog sets the kernel's accept queue (gnet listens with
// somaxconn; the engine calls listen(2) again on a duplicate of the
// listening socket, which Linux applies to the shared socket).
//
// # TLS
//
// Transport is the seam for TLS: inbound octets pass through
// Transport.Inbound before the splitter, outbound ones through
// Transport.Outbound. Options.NewTransport supplies one for implicit-TLS
// listeners (Options.TLSListen) and for Reply.StartTLS, which also
// discards any input buffered after the STLS line (RFC 2595 §4).
//
// TLSTransports (tls.go) is that transport: crypto/tls fed from the event
// loop through engine/tlsconn. The handshake runs on its own goroutine
// bounded by tls.handshake_timeout (a slot of the socket pool is held
// meanwhile, so admission bounds the handshakes too); afterwards every TLS
// read and write happens on the event loop, so TLS connections share the
// idle sweep, pipelining order and backpressure of plaintext ones (gnet's
// outbound buffer then holds ciphertext). The alternative, handing the
// socket to a goroutine after STLS, was measured at 23.3 KB per idle
// session against 6.8 KB for this design.
//
// # Worker pool and task queue
//
// Tasks that find every worker busy wait in a FIFO of pop3.task_queue
// entries (taskqueue.go) instead of being refused; a worker that finishes
// its task takes queued ones. Only beyond the queue is a command answered
// "-ERR [SYS/TEMP] server busy", and a session that implements
// session.Refuser is told, so that a SASL exchange does not expect the
// refused line's continuation. The first chunk of a reply body is read on
// the worker that ran its command and sent with the status line in one
// writev.
//
// # Reload and shutdown
//
// Reload swaps the live settings (pool size through ants' Tune, socket
// pool limits, timeouts, protocol limits) and the session factory for new
// connections without touching open sessions. Shutdown refuses new
// connections, lets commands in flight finish (bounded), stops gnet, and
// closes sessions and releases the pool only after gnet's Run returned.
//
// # Metrics
//
// pop3_connections_current, pop3_connections_total,
// pop3_sockets{state="in_use|waiting|free"},
// pop3_connections_refused_total{reason="backlog_full|per_ip|backlog_timeout|shutting_down|prelogin_per_ip|prelogin_per_net"},
// pop3_connections_shed_total, pop3_login_deadline_total,
// pop3_pool_running, pop3_pool_waiting, pop3_pool_capacity,
// pop3_pool_overload_total, pop3_pool_queued_total,
// pop3_tls_handshakes_total{result="ok|failed"},
// pop3_tls_connections_current, pop3_bytes_received_total,
// pop3_bytes_sent_total, pop3_idle_timeouts_total, pop3_panics_total,
// pop3_inbound_overflow_total.
package engine
