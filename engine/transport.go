package engine

import "errors"

// Transport sits between the socket and the line splitter: the seam for
// TLS (implicit on pop3.listen_tls, or after STLS; tls.go). A TLS adapter
// feeds the ciphertext gnet read into crypto/tls and hands back the
// plaintext, and seals outgoing plaintext into records.
//
// Both methods run on the connection's event loop and must not block.
type Transport interface {
	// Inbound takes octets read from the socket and returns the plaintext
	// now available (possibly none). An error closes the connection.
	Inbound(p []byte) ([]byte, error)
	// Outbound encodes plaintext for the socket.
	Outbound(p []byte) ([]byte, error)
}

// outboundReleaser is a Transport that wants Outbound's result back once
// the engine has written it to the socket, to reuse its memory.
type outboundReleaser interface {
	releaseOutbound(b []byte)
}

var errNoTLS = errors.New("no TLS transport configured")
