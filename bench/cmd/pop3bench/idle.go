package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pop3svc/pop3svc/bench/corpus"
	"github.com/pop3svc/pop3svc/bench/report"
)

// Idle scenario limits.
const (
	// MaxConnsPerWorker keeps each worker process well under the 20,000
	// descriptors one process may hold.
	MaxConnsPerWorker = 15000
	// DialParallel is how many connections one worker opens at once.
	DialParallel = 256
	// IdleSourceIPs is how many loopback source addresses (127.0.0.1 ..)
	// the connections are spread over.
	IdleSourceIPs = 8
	// LoginParallel is how many logins one worker has in flight: a server
	// may refuse logins beyond its worker pool with -ERR [SYS/TEMP].
	LoginParallel = 16
	// LoginRetries is how often a login refused with [SYS/TEMP] is retried.
	LoginRetries = 50
	// LoginRetryWait is the pause before such a retry.
	LoginRetryWait = 50 * time.Millisecond
	// WorkerStopWait is how long a worker may take to close its
	// connections and exit before it is killed.
	WorkerStopWait = 30 * time.Second
	// greetBuf is the buffer for a greeting or a reply of an idle connection.
	greetBuf = 512
)

// idleResult is what one worker reports on its "ready" line.
type idleResult struct {
	opened, errors  int
	openNs, loginNs int64
}

// idleOptions are the idle scenario's parameters.
type idleOptions struct {
	Addr    string
	N       int
	Login   bool
	Workers int // 0: two per CPU, more when needed to stay under MaxConnsPerWorker
	Spec    corpus.Spec
	Timeout time.Duration
	// Baseline, when set, is called once the workers are up, just before
	// the connections are opened (to read the server's memory).
	Baseline func(r *report.Run)
}

// runIdle opens N connections spread over worker processes and source
// addresses, optionally logs each in to its own idle mailbox, calls
// measure while they are all held, then closes them. Open time is the
// slowest worker's time from "go" to its last greeting.
func runIdle(ctx context.Context, o idleOptions, measure func(r *report.Run)) (r report.Run, err error) {
	r = report.Run{Scenario: "idle-prelogin", Conns: o.N, Concurrency: o.N}
	if o.Login {
		r.Scenario = "idle-login"
		if o.N > o.Spec.Idle {
			return r, fmt.Errorf("%d logged-in sessions need %d idle mailboxes, the corpus has %d", o.N, o.N, o.Spec.Idle)
		}
	}
	w := o.Workers
	if w <= 0 {
		w = max(2*runtime.NumCPU(), (o.N+MaxConnsPerWorker-1)/MaxConnsPerWorker)
	}
	if o.N/w > MaxConnsPerWorker {
		return r, fmt.Errorf("%d connections over %d workers exceed %d per worker", o.N, w, MaxConnsPerWorker)
	}
	exe, err := os.Executable()
	if err != nil {
		return r, err
	}
	type worker struct {
		cmd *exec.Cmd
		in  io.WriteCloser
		out *bufio.Reader
	}
	var ws []*worker
	defer func() {
		for _, x := range ws {
			x.in.Close()
			done := make(chan struct{})
			go func() { x.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(WorkerStopWait):
				x.cmd.Process.Kill()
				<-done
			}
			if st := x.cmd.ProcessState; st != nil { // the harness's CPU includes its workers'
				r.ClientCPUSec += (st.UserTime() + st.SystemTime()).Seconds()
			}
		}
	}()
	offset := 0
	for i := 0; i < w; i++ {
		n := o.N / w
		if i < o.N%w {
			n++
		}
		args := []string{"idle-worker", "-addr", o.Addr, "-n", strconv.Itoa(n), "-offset", strconv.Itoa(offset),
			"-domain", o.Spec.Domain, "-password", o.Spec.Password, "-timeout", o.Timeout.String()}
		if o.Login {
			args = append(args, "-login")
		}
		offset += n
		cmd := exec.Command(exe, args...)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return r, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return r, err
		}
		if err := cmd.Start(); err != nil {
			return r, fmt.Errorf("cannot start idle worker: %w", err)
		}
		x := &worker{cmd: cmd, in: in, out: bufio.NewReader(out)}
		ws = append(ws, x)
		if l, err := x.out.ReadString('\n'); err != nil || l != "up\n" {
			return r, fmt.Errorf("idle worker did not start: %q %v", l, err)
		}
	}
	if o.Baseline != nil {
		o.Baseline(&r)
	}
	start := time.Now()
	for _, x := range ws {
		io.WriteString(x.in, "go\n")
	}
	var maxOpen, maxLogin int64
	for _, x := range ws {
		l, err := x.out.ReadString('\n')
		if err != nil {
			return r, fmt.Errorf("idle worker failed: %v", err)
		}
		var res idleResult
		f := strings.SplitN(strings.TrimSpace(l), " ", 6)
		if len(f) < 5 || f[0] != "ready" {
			return r, fmt.Errorf("idle worker said %q", l)
		}
		res.opened, _ = strconv.Atoi(f[1])
		res.errors, _ = strconv.Atoi(f[2])
		res.openNs, _ = strconv.ParseInt(f[3], 10, 64)
		res.loginNs, _ = strconv.ParseInt(f[4], 10, 64)
		if len(f) == 6 && r.FirstError == "" {
			r.FirstError = f[5]
		}
		r.Errors += int64(res.errors)
		maxOpen, maxLogin = max(maxOpen, res.openNs), max(maxLogin, res.loginNs)
	}
	r.Seconds = time.Since(start).Seconds()
	r.OpenSeconds = float64(maxOpen) / 1e9
	r.Conns = o.N - int(r.Errors)
	if measure != nil {
		measure(&r)
	}
	return r, nil
}

// idleWorker is the worker process: it opens its share of connections
// when told "go", reports, holds them until its stdin closes, then closes
// them.
func idleWorker(args []string) error {
	fs := flag.NewFlagSet("idle-worker", flag.ContinueOnError)
	addr := fs.String("addr", "", "server address")
	n := fs.Int("n", 0, "connections")
	offset := fs.Int("offset", 0, "first idle mailbox index")
	login := fs.Bool("login", false, "log in to idle mailboxes")
	domain := fs.String("domain", "", "mail domain")
	password := fs.String("password", "", "password")
	timeout := fs.Duration("timeout", 30*time.Second, "I/O timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 0 || *n > MaxConnsPerWorker {
		return fmt.Errorf("idle-worker: -n %d outside 0..%d", *n, MaxConnsPerWorker)
	}
	in := bufio.NewReader(os.Stdin)
	fmt.Println("up")
	if l, err := in.ReadString('\n'); err != nil || l != "go\n" {
		return fmt.Errorf("idle-worker: expected go, got %q %v", l, err)
	}
	conns := make([]net.Conn, *n)
	var errs atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, strings.ReplaceAll(err.Error(), "\n", " "))
	}
	parallel := func(par int, fn func(i int)) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for g := 0; g < par; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= *n {
						return
					}
					fn(i)
				}
			}()
		}
		wg.Wait()
	}
	t0 := time.Now()
	parallel(DialParallel, func(i int) {
		ip := fmt.Sprintf("127.0.0.%d", 1+(*offset+i)%IdleSourceIPs)
		d := net.Dialer{Timeout: *timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.Dial("tcp", *addr)
		if err != nil {
			fail(err)
			return
		}
		if err := expectOK(c, *timeout); err != nil {
			c.Close()
			fail(fmt.Errorf("greeting: %w", err))
			return
		}
		conns[i] = c
	})
	openNs := time.Since(t0).Nanoseconds()
	t1 := time.Now()
	if *login {
		parallel(LoginParallel, func(i int) {
			c := conns[i]
			if c == nil {
				return
			}
			user := corpus.IdleUser(*offset+i) + "@" + *domain
			var err error
			for try := 0; try <= LoginRetries; try++ {
				if err = idleLogin(c, user, *password, *timeout); err == nil || !strings.Contains(err.Error(), "[SYS/TEMP]") {
					break
				}
				time.Sleep(LoginRetryWait)
			}
			if err != nil {
				fail(err)
				c.Close()
				conns[i] = nil
			}
		})
	}
	loginNs := time.Since(t1).Nanoseconds()
	fe, _ := firstErr.Load().(string)
	fmt.Printf("ready %d %d %d %d %s\n", *n-int(errs.Load()), errs.Load(), openNs, loginNs, fe)
	io.Copy(io.Discard, in) // hold until the parent closes stdin
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	return nil
}

// idleLogin sends USER and PASS on an idle connection.
func idleLogin(c net.Conn, user, password string, timeout time.Duration) error {
	for _, cmd := range []string{"USER " + user, "PASS " + password} {
		c.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := io.WriteString(c, cmd+"\r\n"); err != nil {
			return err
		}
		if err := expectOK(c, timeout); err != nil {
			return fmt.Errorf("%s: %w", strings.Fields(cmd)[0], err)
		}
	}
	return nil
}

// expectOK reads one reply line of an idle connection with a small buffer.
func expectOK(c net.Conn, timeout time.Duration) error {
	var buf [greetBuf]byte
	n := 0
	c.SetReadDeadline(time.Now().Add(timeout))
	for {
		k, err := c.Read(buf[n:])
		n += k
		if i := strings.IndexByte(string(buf[:n]), '\n'); i >= 0 {
			if !strings.HasPrefix(string(buf[:n]), "+OK") {
				return fmt.Errorf("reply %q", strings.TrimSpace(string(buf[:i])))
			}
			return nil
		}
		if err != nil {
			return err
		}
		if n == len(buf) {
			return errors.New("reply line too long")
		}
	}
}
