package pop3

import (
	"fmt"
	"testing"

	"github.com/pop3svc/pop3svc/store"
)

// benchSession is a session in the TRANSACTION state over a snapshot of n
// messages: LIST and UIDL render from the snapshot only.
func benchSession(n int) *Session {
	s := New(&Options{Logger: quietLogger}, ci)
	s.state = stateTransaction
	s.msgs = make([]store.MessageInfo, n)
	for i := range s.msgs {
		s.msgs[i] = store.MessageInfo{UID: fmt.Sprintf("%026d", 20260101000000000+i), Size: int64(1000 + i)}
		s.liveSize += s.msgs[i].Size
	}
	s.deleted = make([]bool, n)
	s.live = n
	return s
}

func BenchmarkList10000(b *testing.B) {
	s := benchSession(10000)
	b.ReportAllocs()
	for b.Loop() {
		r := s.Handle([]byte("LIST"))
		b.SetBytes(int64(len(r.Out)))
	}
}

func BenchmarkUidl10000(b *testing.B) {
	s := benchSession(10000)
	b.ReportAllocs()
	for b.Loop() {
		r := s.Handle([]byte("UIDL"))
		b.SetBytes(int64(len(r.Out)))
	}
}
