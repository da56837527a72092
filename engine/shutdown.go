package engine

import (
	"context"
	"errors"
	"time"
)

// DefaultDrain bounds how long Shutdown lets commands in flight finish
// when its context has no deadline.
const DefaultDrain = 10 * time.Second

// Shutdown stops the server: new connections are refused with
// -ERR [SYS/TEMP], idle sessions are closed, sessions with a command in
// flight close once it has been answered; after ctx's deadline (or
// DefaultDrain) the engine stops regardless. Sessions are closed (nothing
// deleted unless they reached QUIT) and the worker pool released only
// after gnet's Run has returned.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() { err = s.shutdown(ctx) })
	return err
}

func (s *Server) shutdown(ctx context.Context) error {
	if !s.running.Load() {
		s.pool.Release()
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultDrain)
		defer cancel()
	}
	s.draining.Store(true)
	s.registry.each(func(k *conn) { k.post(k.drainNow, nil) })
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
drain:
	for s.registry.count() > 0 {
		select {
		case <-ctx.Done():
			s.log.Warn("drain deadline reached, closing remaining connections", "left", s.registry.count())
			break drain
		case <-tick.C:
		}
	}
	var errs []error
	if s.engOK.Load() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.eng.Stop(stopCtx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	<-s.done
	s.waker.stop()
	servers.Delete(s)
	// Connections gnet closed during Stop finalize through the pool; wait
	// for their session Close before releasing it.
	waitGroup(&s.final, 5*time.Second)
	if err := s.pool.ReleaseTimeout(5 * time.Second); err != nil {
		errs = append(errs, err)
	}
	// Tasks queued on the loops when they stopped never run: close the
	// sessions they would have released.
	s.live.Range(func(key, _ any) bool {
		k := key.(*conn)
		if _, ok := s.live.LoadAndDelete(k); !ok {
			return true
		}
		if st := k.stream; st != nil {
			_ = st.body.Close()
			st.releaseSlot(s)
		}
		if k.sess != nil {
			k.sess.Close()
		}
		return true
	})
	if s.runErr != nil {
		errs = append(errs, s.runErr)
	}
	return errors.Join(errs...)
}

func waitGroup(wg interface{ Wait() }, d time.Duration) bool {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}
