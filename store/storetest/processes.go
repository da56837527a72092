package storetest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pop3svc/pop3svc/store"
)

// Environment of a child process: what it does, and the store it opens.
const (
	childEnv = "STORETEST_CHILD"
	rootEnv  = "STORETEST_ROOT"
	nodeEnv  = "STORETEST_NODE"
)

// childWait bounds the wait for a child to reach a state; a child that
// has not reached it by then is stuck.
const childWait = 60 * time.Second

// mainOpen is the OpenFunc Main was given; nil when Main did not run.
var mainOpen OpenFunc

// Main is the TestMain of a package whose store declares the Processes
// capability:
//
//	func TestMain(m *testing.M) { storetest.Main(m, open) }
//
// In the test binary run as a child of a Processes check, it opens the
// store with open, does the child's work and exits; otherwise it runs
// the tests.
func Main(m *testing.M, open OpenFunc) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode, open))
	}
	mainOpen = open
	os.Exit(m.Run())
}

// childBox is the mailbox children work on.
var childBox = store.Address{Mailbox: "alice", Domain: "example.com"}

// manyPerProcess is what each child of UniqueUIDsSameNode delivers.
const manyPerProcess = 100

// runChild does the work of a child process; it reports on stdout, one
// line per state reached.
func runChild(mode string, open OpenFunc) int {
	node, _ := strconv.Atoi(os.Getenv(nodeEnv))
	s, err := open(os.Getenv(rootEnv), node)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	bg := context.Background()
	switch mode {
	case "deliver-stall":
		// A message that arrives slowly: part of it, then nothing.
		r := io.MultiReader(strings.NewReader(strings.Repeat("partial line\n", 10000)), stallReader{})
		_, err = s.Deliver(bg, childBox, r)
	case "deliver-acked":
		for i := 0; err == nil; i++ {
			var uid string
			uid, err = s.Deliver(bg, childBox, strings.NewReader(ackedBody(i)))
			if err == nil {
				fmt.Println("acked", i, uid)
			}
		}
	case "deliver-many":
		for i := 0; i < manyPerProcess && err == nil; i++ {
			_, err = s.Deliver(bg, childBox, strings.NewReader(fmt.Sprintf("pid %d message %d\r\n", os.Getpid(), i)))
		}
		if err == nil {
			fmt.Println("done")
			return 0
		}
	case "session":
		if _, err = s.OpenSession(bg, childBox, "child"); err == nil {
			fmt.Println("locked")
			select {} // until killed
		}
	default:
		err = fmt.Errorf("unknown child mode %q", mode)
	}
	fmt.Println("error", err)
	return 1
}

// ackedBody is message i of the deliver-acked child: several lines, so
// that a partial one is told apart.
func ackedBody(i int) string {
	return fmt.Sprintf("Subject: acked %d\r\n\r\n%s\r\nend of %d\r\n", i, strings.Repeat("body line\r\n", 50+i%200), i)
}

// stallReader announces that the delivery is under way, then blocks until
// the process is killed.
type stallReader struct{}

func (stallReader) Read([]byte) (int, error) {
	fmt.Println("writing")
	select {}
}

// child is a running child process.
type child struct {
	t    *testing.T
	mode string
	cmd  *exec.Cmd
	done chan struct{} // closed when its stdout reached EOF

	mu     sync.Mutex
	lines  []string // its stdout, line by line
	read   int      // lines returned by await
	notify chan struct{}
}

// startChild runs the test binary as a child doing mode on the store at root.
func startChild(t *testing.T, root string, node int, mode string) *child {
	t.Helper()
	if mainOpen == nil {
		t.Fatal("storetest: the Processes capability needs storetest.Main in the package's TestMain")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, rootEnv+"="+root, nodeEnv+"="+strconv.Itoa(node))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, mode: mode, cmd: cmd, done: make(chan struct{}), notify: make(chan struct{}, 1)}
	go func() {
		// Only the child holds the pipe's write end: EOF comes when it ends.
		defer close(c.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
			select {
			case c.notify <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(c.kill)
	return c
}

// await returns the child's next line starting with prefix, failing on an
// "error" line, on EOF, or when the child is stuck.
func (c *child) await(prefix string) string {
	c.t.Helper()
	timeout := time.NewTimer(childWait)
	defer timeout.Stop()
	for {
		c.mu.Lock()
		for c.read < len(c.lines) {
			l := c.lines[c.read]
			c.read++
			if strings.HasPrefix(l, "error") {
				c.mu.Unlock()
				c.t.Fatalf("child %s: %s", c.mode, l)
			}
			if strings.HasPrefix(l, prefix) {
				c.mu.Unlock()
				return l
			}
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.done:
			c.mu.Lock()
			more := c.read < len(c.lines)
			c.mu.Unlock()
			if !more {
				c.t.Fatalf("child %s ended before saying %q", c.mode, prefix)
			}
		case <-timeout.C:
			c.t.Fatalf("child %s did not say %q", c.mode, prefix)
		}
	}
}

// kill sends SIGKILL, reads what the child wrote to the end and reaps it;
// it can be called more than once.
func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done // a killed process's pipe closes
	c.cmd.Wait()
}

// all returns every line the child wrote; the child must have ended.
func (c *child) all() []string {
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lines
}

// testKilledDuringDelivery: a process killed half-way through a delivery
// leaves no message, and the mailbox works on.
func testKilledDuringDelivery(t *testing.T, s store.Store, open OpenFunc) {
	setup(t, s, "alice")
	c := startChild(t, s.Root(), peerNode, "deliver-stall")
	c.await("writing")
	c.kill()
	if n, b, err := s.Usage(ctx, childBox); err != nil || n != 0 || b != 0 {
		t.Fatalf("after a killed delivery Usage = %d, %d, %v; want nothing", n, b, err)
	}
	uid := deliver(t, s, childBox, "after\r\n")
	if uids, _ := contents(t, s, childBox); len(uids) != 1 || uids[0] != uid {
		t.Fatalf("after a killed delivery the mailbox holds %q, want only %s", uids, uid)
	}
}

// testAcknowledgedSurvivesKill: every message whose Deliver returned
// before the process was killed is kept whole, and nothing partial
// appears.
func testAcknowledgedSurvivesKill(t *testing.T, s store.Store, open OpenFunc) {
	setup(t, s, "alice")
	c := startChild(t, s.Root(), peerNode, "deliver-acked")
	for i := 0; i < 20; i++ {
		c.await("acked")
	}
	c.kill()
	acked := map[string]string{} // uid -> body
	for _, l := range c.all() {
		var i int
		var uid string
		if _, err := fmt.Sscanf(l, "acked %d %s", &i, &uid); err == nil {
			acked[uid] = ackedBody(i)
		}
	}
	uids, bodies := contents(t, s, childBox)
	subj := regexp.MustCompile(`^Subject: acked (\d+)\r\n`)
	kept := map[string]bool{}
	for k, u := range uids {
		m := subj.FindStringSubmatch(bodies[k])
		if m == nil {
			t.Fatalf("message %s is not one the child wrote: %.40q", u, bodies[k])
		}
		i, _ := strconv.Atoi(m[1])
		if bodies[k] != ackedBody(i) {
			t.Fatalf("message %s is partial: %d octets, want %d", u, len(bodies[k]), len(ackedBody(i)))
		}
		kept[u] = true
	}
	for u := range acked {
		if !kept[u] {
			t.Errorf("acknowledged message %s lost in the kill", u)
		}
	}
	// At most the one delivery in flight at the kill may have been kept
	// without its acknowledgement written.
	if extra := len(uids) - len(acked); extra < 0 || extra > 1 {
		t.Fatalf("%d messages kept for %d acknowledged", len(uids), len(acked))
	}
}

// testKilledHoldingSession: the lock of a session whose process died does
// not lock the mailbox forever, and the dead session deleted nothing.
func testKilledHoldingSession(t *testing.T, s store.Store, open OpenFunc) {
	setup(t, s, "alice")
	deliver(t, s, childBox, "kept\r\n")
	c := startChild(t, s.Root(), peerNode, "session")
	c.await("locked")
	_, err := s.OpenSession(ctx, childBox, "t")
	wantErr(t, "OpenSession while a live process holds the mailbox", err, store.ErrMailboxInUse)
	if mi, _ := s.Mailbox(ctx, childBox); !mi.InUse || mi.Owner != "child" {
		t.Fatalf("Mailbox while held by a live process = %+v", mi)
	}
	c.kill()
	if mi, _ := s.Mailbox(ctx, childBox); mi.InUse {
		t.Fatalf("a dead process's lock still shows in use: %+v", mi)
	}
	ms, err := s.OpenSession(ctx, childBox, "t")
	wantErr(t, "OpenSession after the holder died", err, nil)
	defer ms.Close()
	if len(ms.Messages()) != 1 {
		t.Fatalf("the killed session changed the mailbox: %d messages", len(ms.Messages()))
	}
}

// testUniqueUIDsSameNode: two processes with the same node number (pop3d
// and a pop3ctl deliver on one server) deliver into one mailbox at once
// with this one: no UID is shared and every message is kept.
func testUniqueUIDsSameNode(t *testing.T, s store.Store, open OpenFunc) {
	setup(t, s, "alice")
	o := reopen(t, open, s.Root(), peerNode)
	var cs []*child
	for i := 0; i < 2; i++ {
		cs = append(cs, startChild(t, s.Root(), peerNode, "deliver-many"))
	}
	for i := 0; i < manyPerProcess; i++ {
		if _, err := o.Deliver(ctx, childBox, strings.NewReader("parent\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cs {
		c.await("done")
		<-c.done
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("child: %v", err)
		}
	}
	uids, _ := contents(t, s, childBox)
	if len(uids) != 3*manyPerProcess {
		t.Fatalf("%d messages, want %d", len(uids), 3*manyPerProcess)
	}
	seen := map[string]bool{}
	for i, u := range uids {
		if seen[u] || (i > 0 && u <= uids[i-1]) {
			t.Fatalf("UID %s repeated or out of order", u)
		}
		seen[u] = true
	}
}
