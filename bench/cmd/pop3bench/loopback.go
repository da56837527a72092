package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/pop3svc/pop3svc/bench/corpus"
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
// The sender writes the same 256 KiB buffer over and over, so the reader
// copies data that is hot in the CPU's cache.
func loopbackRun(ctx context.Context, d time.Duration) (report.Run, error) {
	r := report.Run{Server: report.Loopback, Scenario: report.Loopback, Concurrency: 1}
	return loopbackMeasure(ctx, d, r, func(c net.Conn, stop *atomic.Bool) error {
		buf := make([]byte, LoopbackWriteSize)
		for !stop.Load() {
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
		return nil
	})
}

// LoopbackFileName is the file loopbackFileRun sends, in the work folder:
// the 10 MiB attachment message (corpus.Spec.AttachmentMessage(0)), CRLF.
const LoopbackFileName = "loopback-attachment.eml"

// writeLoopbackFile writes the message loopbackFileRun sends into dir,
// the attachment message of the first big mailbox as the corpus builds
// it (what a server sends for RETR of corpus.BigAttachmentMsg), and
// returns its path.
func writeLoopbackFile(dir string, spec corpus.Spec) (string, error) {
	path := filepath.Join(dir, LoopbackFileName)
	if err := os.WriteFile(path, spec.AttachmentMessage(0), 0o644); err != nil {
		return "", fmt.Errorf("loopback file: %w", err)
	}
	return path, nil
}

// loopbackFileRun is loopbackRun with a sender that sends the file at
// path, over and over, with sendfile(2) (io.Copy from an *os.File to a
// TCP connection), as a server sends a stored message; the reader is the
// same. The file is read once first, so that its pages are in the page
// cache. A diagnostic beside loopbackRun: the pages of a 10 MiB file are
// not in the CPU's cache when the reader copies them, as a hot buffer is.
func loopbackFileRun(ctx context.Context, d time.Duration, path string) (report.Run, error) {
	r := report.Run{Server: report.LoopbackFile, Scenario: report.LoopbackFile, Concurrency: 1}
	f, err := os.Open(path)
	if err != nil {
		return r, fmt.Errorf("loopback file: %w", err)
	}
	defer f.Close()
	if n, err := io.Copy(io.Discard, f); err != nil || n == 0 {
		return r, fmt.Errorf("loopback file %s: read %d bytes: %v", path, n, err)
	}
	return loopbackMeasure(ctx, d, r, func(c net.Conn, stop *atomic.Bool) error { return sendFileLoop(c, f, stop) })
}

// sendFileLoop sends f whole to c over and over until stop is set or a
// send fails. io.Copy from an *os.File to a TCP connection is sendfile(2)
// on Linux: the file's pages go to the socket without a copy through
// user space.
func sendFileLoop(c net.Conn, f *os.File, stop *atomic.Bool) error {
	for !stop.Load() {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.Copy(c, f); err != nil {
			return err
		}
	}
	return nil
}

// dialSender runs send on the accepted end of a new TCP loopback
// connection and returns the other end. Setting stop asks send to end;
// sent gives its error once it returned.
func dialSender(send func(c net.Conn, stop *atomic.Bool) error) (net.Conn, *atomic.Bool, <-chan error, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, nil, err
	}
	stop := new(atomic.Bool)
	sent := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			sent <- err
			return
		}
		defer c.Close()
		sent <- send(c, stop)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		ln.Close()
		return nil, nil, nil, err
	}
	return c, stop, sent, nil
}

// loopbackMeasure runs send on the accepted end of a TCP loopback
// connection and reads from the other end through a LoopbackReadSize
// buffer for d, then fills r with the bytes read, the rate, the
// process's CPU time and the load average.
func loopbackMeasure(ctx context.Context, d time.Duration, r report.Run, send func(c net.Conn, stop *atomic.Bool) error) (report.Run, error) {
	c, stop, sent, err := dialSender(send)
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
