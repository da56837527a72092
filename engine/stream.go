package engine

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/ants/v2"

	"github.com/pop3svc/pop3svc/session"
)

// stream is a reply body being sent: read in chunks on a worker, written on
// the loop, paused while the client reads slower than the engine writes.
// A chunk buffer is held only from the read to the write (gnet copies what
// the socket does not take at once into its outbound buffer), so a parked
// stream to a slow reader holds no chunk.
type stream struct {
	body    io.ReadCloser
	reply   session.Reply
	parked  bool // waiting for the outbound buffer to fall to the low mark
	lastOut int  // OutboundBuffered at the last look, to see progress

	// A body sent from a goroutine (sendfile.go): the body, whether it is
	// copied rather than sent with sendfile, the duplicate descriptor its
	// goroutine writes to (nil while parked before the start), and the
	// octets it sent so far.
	file session.FileBody
	copy bool
	sock *os.File
	sent atomic.Int64
	slot bool // holds a slot its goroutine has not taken over
}

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

func getChunk() []byte { return *(chunkPool.Get().(*[]byte)) }

func putChunk(b []byte) {
	if cap(b) == chunkSize {
		b = b[:chunkSize]
		chunkPool.Put(&b)
	}
}

func (k *conn) startStream(r session.Reply) {
	if k.startSendfile(r) {
		return
	}
	k.stream = &stream{body: r.Body, reply: r}
	k.streamRead()
}

// streamRead reads the next chunk on a worker; the chunk is written on the
// loop. A full pool parks the stream; the waker retries it.
func (k *conn) streamRead() {
	st := k.stream
	k.refs.Add(1)
	err := k.srv.submit(func() {
		defer k.release()
		buf := getChunk()
		n, err := readChunk(st.body, buf)
		k.post(func() { k.streamChunk(buf, n, err) }, func() { putChunk(buf) })
	})
	if err != nil {
		k.refs.Add(-1)
		if errors.Is(err, ants.ErrPoolOverload) {
			mPoolOverload.Inc()
			st.parked = true
			k.srv.waker.add(k)
			return
		}
		k.phase.Store(phaseClosing)
		_ = k.gc.Close()
	}
}

// readChunk fills buf from a reply body: io.EOF or io.ErrUnexpectedEOF
// mark the body's end.
func readChunk(body io.Reader, buf []byte) (int, error) { return io.ReadFull(body, buf) }

// streamChunk writes a chunk read by a worker and decides what comes next.
func (k *conn) streamChunk(buf []byte, n int, err error) {
	st := k.stream
	if st == nil {
		putChunk(buf)
		return
	}
	if n > 0 {
		ok := k.write(buf[:n])
		putChunk(buf)
		if !ok {
			return // gone: finalize closes the body
		}
		k.touch()
	} else if buf != nil {
		putChunk(buf)
	}
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		k.endStream()
		return
	case err != nil:
		// The reply is half sent: the client cannot tell a truncated
		// body from a complete one unless the connection ends.
		k.logger().Error("cannot read the reply body, closing", "err", err)
		k.endStream()
		k.phase.Store(phaseClosing)
		_ = k.gc.Close()
		return
	}
	out := k.gc.OutboundBuffered()
	st.lastOut = out
	if int64(out) > k.srv.peakOutbound.Load() {
		k.srv.peakOutbound.Store(int64(out)) // racy max, good enough for a gauge
	}
	if out > k.srv.settings().outboundHigh {
		st.parked = true
		mStreamPauses.Inc()
		k.srv.waker.add(k)
		return
	}
	k.streamRead()
}

func (k *conn) endStream() {
	st := k.stream
	k.stream = nil
	st.releaseSlot(k.srv)
	_ = st.body.Close()
	if k.phase.Load() != phaseClosing {
		k.finish(st.reply)
	}
}

// waker looks, every interval, at connections that wait for their
// outbound buffer to drain: parked streams and connections closing after
// their last reply. gnet has no "drained" event, so this short poll (one
// goroutine per engine, idle while nothing waits) stands in for it; the
// idle sweep's one-second tick would make slow readers crawl.
type waker struct {
	mu       sync.Mutex
	set      map[*conn]struct{}
	kick     chan struct{}
	quit     chan struct{}
	interval time.Duration
	wg       sync.WaitGroup
}

func (w *waker) init(interval time.Duration) {
	w.set = make(map[*conn]struct{})
	w.kick = make(chan struct{}, 1)
	w.quit = make(chan struct{})
	w.interval = interval
}

// add registers k (on its loop); the entry holds a reference.
func (w *waker) add(k *conn) {
	w.mu.Lock()
	if _, ok := w.set[k]; ok {
		w.mu.Unlock()
		return
	}
	k.refs.Add(1)
	w.set[k] = struct{}{}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *waker) remove(k *conn) {
	w.mu.Lock()
	_, ok := w.set[k]
	delete(w.set, k)
	w.mu.Unlock()
	if ok {
		k.release()
	}
}

func (w *waker) start(s *Server) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(w.interval)
		defer t.Stop()
		var batch []*conn
		for {
			w.mu.Lock()
			n := len(w.set)
			w.mu.Unlock()
			if n == 0 {
				select {
				case <-w.quit:
					return
				case <-w.kick:
				}
			}
			select {
			case <-w.quit:
				return
			case <-t.C:
			}
			batch = batch[:0]
			w.mu.Lock()
			for k := range w.set {
				k.refs.Add(1)
				batch = append(batch, k)
			}
			w.mu.Unlock()
			for _, k := range batch {
				k.post(func() {
					if !k.recheck() {
						w.remove(k)
					}
				}, func() { w.remove(k) })
				k.release()
			}
			clear(batch)
		}
	}()
}

func (w *waker) stop() {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	w.wg.Wait()
	w.mu.Lock()
	var left []*conn
	for k := range w.set {
		left = append(left, k)
	}
	clear(w.set)
	w.mu.Unlock()
	for _, k := range left {
		k.release()
	}
}
