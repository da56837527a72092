package main

import (
	"context"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/bench/report"
)

func TestLoopbackRunMovesBytes(t *testing.T) {
	r, err := loopbackRun(context.Background(), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Server != report.Loopback || r.Scenario != report.Loopback || r.Bytes < LoopbackWriteSize || r.MBPerSec <= 0 || r.Seconds <= 0 || r.LoadAvg <= 0 {
		t.Fatalf("loopback run %+v: want the loopback scenario, at least one write's bytes, a rate and a load average", r)
	}
}
