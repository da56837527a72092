package smtp

import (
	"bufio"
	"context"
	"fmt"
	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/pop3svc/pop3svc/session/delivery"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/filestore"
	"github.com/pop3svc/pop3svc/store/queue"
)

const helperEnv = "POP3_SMTP_CRASH_HELPER_ROOT"

// crashHelper is the helper process of TestCrashRecovery, run by TestMain
// when helperEnv is set: it serves SMTP and runs the delivery service on
// the mail root named by the environment until it is killed.
func crashHelper(root string) {
	st, err := filestore.Open(root, filestore.Options{Node: 1})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	q, err := queue.Open(root)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	dlv := delivery.New(st, q, delivery.Options{Hostname: "mx.test", RetryMin: 50 * time.Millisecond, QueueScan: 200 * time.Millisecond})
	dlv.Start()
	svc := New(st, q, dlv.Notify, Options{Hostname: "mx.test"})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	go svc.NewServer(false).Serve(l)
	fmt.Println("ADDR", l.Addr().String())
	// Until killed; or until stdin closes, should the test process die
	// without killing its helper.
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

type helper struct {
	cmd  *exec.Cmd
	addr string
}

func startHelper(t *testing.T, root string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0]) // TestMain runs crashHelper
	cmd.Env = append(os.Environ(), helperEnv+"="+root)
	if _, err := cmd.StdinPipe(); err != nil { // held open while the test runs
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd}
	t.Cleanup(func() { h.kill() })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "ADDR ") || strings.HasPrefix(l, "ERR ") {
				lines <- l
				break
			}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case l := <-lines:
		if !strings.HasPrefix(l, "ADDR ") {
			t.Fatalf("helper: %s", l)
		}
		h.addr = strings.TrimPrefix(l, "ADDR ")
	case <-time.After(30 * time.Second):
		t.Fatal("helper did not start")
	}
	return h
}

func (h *helper) kill() {
	if h.cmd.Process != nil && h.cmd.ProcessState == nil {
		h.cmd.Process.Signal(syscall.SIGKILL)
		h.cmd.Wait()
	}
}

// TestCrashRecovery kills the service with SIGKILL in the middle of a
// stream of messages and checks after a restart that every acknowledged
// message is in every recipient's mailbox exactly once.
func TestCrashRecovery(t *testing.T) {
	root := t.TempDir()
	rcpts := []string{"r1@example.com", "r2@example.com", "r3@example.com"}
	func() {
		st, err := filestore.Open(root, filestore.Options{Node: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		ctx := context.Background()
		if err := st.CreateDomain(ctx, "example.com"); err != nil {
			t.Fatal(err)
		}
		for _, r := range rcpts {
			a, _ := store.ParseAddress(r, "")
			if err := st.CreateMailbox(ctx, a, ""); err != nil {
				t.Fatal(err)
			}
		}
	}()

	for round := 0; round < 2; round++ {
		h := startHelper(t, root)
		var mu sync.Mutex
		acked := map[string]bool{}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					body := "Subject: crash " + id + "\r\n\r\nbody of " + id + "\r\n"
					c, err := net.DialTimeout("tcp", h.addr, 2*time.Second)
					if err != nil {
						return
					}
					c.SetDeadline(time.Now().Add(10 * time.Second))
					cl := gosmtp.NewClient(c)
					err = cl.SendMail("s@remote.test", rcpts, strings.NewReader(body))
					cl.Close()
					if err != nil {
						return // the server died
					}
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}(w)
		}
		// Kill after some acknowledgements, with deliveries in flight.
		pop3dtest.Eventually(20*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) >= 40+round*25
		})
		h.kill()
		close(stop)
		wg.Wait()
		queued, _, _ := queueDepth(root)
		t.Logf("round %d: %d acknowledged, %d left in the queue at the kill", round, len(acked), queued)

		// Restart and let the queue drain.
		h2 := startHelper(t, root)
		pop3dtest.WaitFor(t, 30*time.Second, "the queue to drain after the restart", func() bool {
			queued, _, err := queueDepth(root)
			if err != nil {
				t.Fatal(err)
			}
			return queued == 0
		})
		h2.kill()

		st, err := filestore.Open(root, filestore.Options{Node: 1})
		if err != nil {
			t.Fatal(err)
		}
		subj := regexp.MustCompile(`Subject: crash (r\d+-w\d+-\d+)\r\n`)
		for _, r := range rcpts {
			a, _ := store.ParseAddress(r, "")
			sess, err := st.OpenSession(context.Background(), a, "test")
			if err != nil {
				t.Fatal(err)
			}
			count := map[string]int{}
			for i := range sess.Messages() {
				rc, err := sess.Open(i)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(rc)
				rc.Close()
				if m := subj.FindSubmatch(b); m != nil {
					count[string(m[1])]++
				}
			}
			sess.Close()
			for id, n := range count {
				if n > 1 {
					t.Errorf("%s has %d copies of %s", r, n, id)
				}
			}
			for id := range acked {
				if count[id] != 1 {
					t.Errorf("%s has %d copies of acknowledged message %s", r, count[id], id)
				}
			}
		}
		st.Close()
	}
}

// queueDepth counts the entries and Badmail messages under a mail root,
// as pop3ctl stat does.
func queueDepth(root string) (queued, badmail int, err error) {
	q, err := queue.At(root)
	if err != nil {
		return 0, 0, err
	}
	return q.Depth()
}
