package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// progress draws a bar on a terminal: elapsed time of the run against its
// duration, with the octets moved so far. Off a terminal it draws nothing.
type progress struct {
	out   io.Writer
	bytes atomic.Int64
	stop  chan struct{}
	done  chan struct{}
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// ProgressInterval is how often the bar is redrawn.
const ProgressInterval = 200 * time.Millisecond

// startProgress starts a bar for a run of dur labelled label; nil when
// stdout is not a terminal. A nil *progress is valid and does nothing.
func startProgress(label string, dur time.Duration) *progress {
	if !isTerminal(os.Stdout) {
		return nil
	}
	p := &progress{out: os.Stdout, stop: make(chan struct{}), done: make(chan struct{})}
	start := time.Now()
	go func() {
		defer close(p.done)
		t := time.NewTicker(ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				fmt.Fprintf(p.out, "\r%s\r", strings.Repeat(" ", 78))
				return
			case <-t.C:
			}
			el := time.Since(start)
			frac := min(1, float64(el)/float64(dur))
			const width = 30
			n := int(frac * width)
			fmt.Fprintf(p.out, "\r%-22.22s [%s%s] %3.0f%% %8.1f MB", label,
				strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, float64(p.bytes.Load())/1e6)
		}
	}()
	return p
}

func (p *progress) add(n int64) {
	if p != nil {
		p.bytes.Add(n)
	}
}

func (p *progress) end() {
	if p != nil {
		close(p.stop)
		<-p.done
	}
}
