package pop3c

import "bytes"

// Stuff returns msg (CRLF lines) as the body of a multi-line reply, the
// server's side of RFC 1939 section 3: a '.' before every line that
// begins with '.', then the terminating dot line. For the bench's own
// small servers and the tests of its client.
func Stuff(msg []byte) []byte {
	var b bytes.Buffer
	for _, l := range bytes.SplitAfter(msg, []byte("\r\n")) {
		if len(l) > 0 && l[0] == '.' {
			b.WriteByte('.')
		}
		b.Write(l)
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}
