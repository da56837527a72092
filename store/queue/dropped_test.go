package queue

import (
	"os"
	"testing"
	"time"
)

// A message dropped into the queue by another program, with an envelope
// that has no "received" time, must not count as received in year 1 (the
// delivery service would then give up at its first temporary failure).
func TestDroppedEnvelopeWithoutReceivedTime(t *testing.T) {
	q := newQueue(t)
	id := "dropped_1"
	must(t, os.WriteFile(q.path(id, MsgSuffix), []byte("Subject: x\r\n\r\nbody\r\n"), 0o600))
	must(t, os.WriteFile(q.path(id, LogSuffix), nil, 0o600))
	must(t, os.WriteFile(q.path(id, EnvSuffix), []byte(`{"from":"a@b.test","rcpts":["c@d.test"]}`), 0o600))
	e, err := q.Lock(id)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if d := time.Since(e.Envelope().Received); d < 0 || d > time.Minute {
		t.Fatalf("Received = %v (%v ago), want about now", e.Envelope().Received, d)
	}
}
