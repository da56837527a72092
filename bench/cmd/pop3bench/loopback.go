package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/pop3svc/pop3svc/bench/pop3c"
	"github.com/pop3svc/pop3svc/bench/proc"
	"github.com/pop3svc/pop3svc/bench/report"
)

// Loopback buffer sizes: the sender writes what pop3d's engine writes per
// RETR chunk, the reader reads through the bench client's read buffer.
const (
	LoopbackWriteSize = 256 << 10 // engine chunkSize
	LoopbackReadSize  = pop3c.ReadBufferSize
)

// loopbackRun measures the machine's own limit for RETR: one plain Go
// sender and one reader over a TCP loopback connection, nothing else, for
// d. The figure a server's RETR is held against, taken in the same run.
func loopbackRun(ctx context.Context, d time.Duration) (report.Run, error) {
	r := report.Run{Server: report.Loopback, Scenario: report.Loopback, Concurrency: 1}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return r, err
	}
	defer ln.Close()
	var stop atomic.Bool
	sent := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sent <- err
			return
		}
		defer c.Close()
		buf := make([]byte, LoopbackWriteSize)
		for !stop.Load() {
			if _, err := c.Write(buf); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return r, err
	}
	self0 := proc.Self()
	br := bufio.NewReaderSize(c, LoopbackReadSize)
	buf := make([]byte, LoopbackReadSize)
	start := time.Now()
	end := start.Add(d)
	var n int64
	for time.Now().Before(end) && ctx.Err() == nil {
		k, err := br.Read(buf)
		n += int64(k)
		if err != nil {
			c.Close()
			return r, fmt.Errorf("loopback read: %w", err)
		}
	}
	r.Seconds = time.Since(start).Seconds()
	stop.Store(true)
	c.Close()
	<-sent // its write to the closed reader fails, or its loop sees stop
	r.ClientCPUSec = (proc.Self() - self0).Seconds()
	r.Bytes = n
	r.MBPerSec = float64(n) / 1e6 / r.Seconds
	r.LoadAvg, _ = proc.LoadAvg()
	return r, nil
}
