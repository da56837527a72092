package engine

// Transport sits between the socket and the line splitter: the seam for
// TLS (implicit on pop3.listen_tls, or after STLS). A TLS adapter feeds
// the ciphertext gnet read into crypto/tls and hands back the plaintext,
// and encodes outgoing plaintext into records.
//
// Both methods run on the connection's event loop and must not block. A
// handshake that needs a round trip returns no plaintext and writes its
// records through the write function the adapter was given.
type Transport interface {
	// Inbound takes octets read from the socket and returns the plaintext
	// now available (possibly none). An error closes the connection.
	Inbound(p []byte) ([]byte, error)
	// Outbound encodes plaintext for the socket.
	Outbound(p []byte) ([]byte, error)
}
