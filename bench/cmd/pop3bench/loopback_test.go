package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/bench/corpus"
	"github.com/pop3svc/pop3svc/bench/report"
)

func TestLoopbackRunMovesBytes(t *testing.T) {
	// A second: the sender's accept and first writes must fit in the
	// window on a loaded machine.
	r, err := loopbackRun(context.Background(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Server != report.Loopback || r.Scenario != report.Loopback || r.Bytes < LoopbackWriteSize || r.MBPerSec <= 0 || r.Seconds <= 0 || r.LoadAvg <= 0 {
		t.Fatalf("loopback run %+v: want the loopback scenario, at least one write's bytes, a rate and a load average", r)
	}
}

func TestLoopbackFileRunMovesBytes(t *testing.T) {
	spec := corpus.Default()
	path, err := writeLoopbackFile(t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, spec.AttachmentMessage(0)) || len(b) != corpus.BigSize {
		t.Fatalf("loopback file has %d bytes, want the 10 MiB attachment message (%d)", len(b), corpus.BigSize)
	}
	r, err := loopbackFileRun(context.Background(), 200*time.Millisecond, path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Server != report.LoopbackFile || r.Scenario != report.LoopbackFile || r.Bytes <= 0 || r.MBPerSec <= 0 || r.Seconds <= 0 || r.LoadAvg <= 0 {
		t.Fatalf("loopback file run %+v: want the loopback-file scenario, bytes, a rate and a load average", r)
	}
	if _, err := loopbackFileRun(context.Background(), 200*time.Millisecond, filepath.Join(t.TempDir(), "missing.eml")); err == nil {
		t.Fatal("loopback file run of a missing file gave no error")
	}
}

// TestSendFileLoopRepeatsTheFile: the sender sends the whole file, from
// its first byte, each time around, over a TCP connection.
func TestSendFileLoopRepeatsTheFile(t *testing.T) {
	content := make([]byte, 300<<10)
	for i := range content {
		content[i] = byte(i*7 + i>>9)
	}
	path := filepath.Join(t.TempDir(), "msg")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, stop, sent, err := dialSender(func(c net.Conn, stop *atomic.Bool) error { return sendFileLoop(c, f, stop) })
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(time.Minute)) // a sender that stopped sending fails the test, not hangs it
	const rounds = 3
	got := make([]byte, rounds*len(content)+len(content)/2)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	stop.Store(true)
	c.Close()
	<-sent // a send to the closed reader fails, or the loop sees stop
	for k := 0; k < rounds; k++ {
		if !bytes.Equal(got[k*len(content):(k+1)*len(content)], content) {
			t.Fatalf("round %d of the file differs from the file", k+1)
		}
	}
	if !bytes.Equal(got[rounds*len(content):], content[:len(content)/2]) {
		t.Fatal("the fourth round does not start at the file's first byte")
	}
}
