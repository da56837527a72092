// Command loginstorm measures a login storm: N logins (USER, PASS, QUIT),
// each on its own connection to its own mailbox, from C clients at once,
// as after a restart when every client polls and nothing is remembered.
//
//	loginstorm -setup -mailroot DIR [-hash ALG ...] -n 400    make mailboxes storm0..storm399@storm.test
//	loginstorm -addr 127.0.0.1:1100 -n 400 -c 64 [-pid PID]   run the storm
//
// -setup hashes the passwords through the store, as pop3ctl does, with
// the hash its flags name (the auth.hash settings' defaults unless told). The run prints logins/s, the
// latency percentiles, the failures and, with -pid, the server's peak
// resident memory (VmHWM) and CPU time.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/filestore"
)

const domain = "storm.test"

func user(i int) string     { return fmt.Sprintf("storm%d", i) }
func password(i int) string { return fmt.Sprintf("storm password %d", i) }

func main() {
	setup := flag.Bool("setup", false, "create the mailboxes and exit")
	mailroot := flag.String("mailroot", "", "setup: the mail root")
	var hp filestore.HashParams
	flag.StringVar(&hp.Alg, "hash", filestore.AlgArgon2id, "setup: argon2id, bcrypt or sha512-crypt (auth.hash)")
	argonTime := flag.Uint("argon2-time", uint(filestore.DefaultArgon2.Time), "setup: argon2id passes (auth.argon2_time)")
	argonMem := flag.Uint("argon2-memory-kib", uint(filestore.DefaultArgon2.MemoryKiB), "setup: argon2id memory in KiB (auth.argon2_memory)")
	flag.IntVar(&hp.BcryptCost, "bcrypt-cost", 0, "setup: bcrypt cost (auth.bcrypt_cost; 0: 10)")
	flag.IntVar(&hp.SHA512Rounds, "sha512-rounds", 0, "setup: SHA-512-crypt rounds (auth.sha512_rounds; 0: 5000)")
	addr := flag.String("addr", "127.0.0.1:1100", "POP3 address")
	n := flag.Int("n", 400, "logins (and mailboxes)")
	c := flag.Int("c", 64, "clients at once")
	pid := flag.Int("pid", 0, "server pid: report its peak RSS and CPU time")
	flag.Parse()
	if *setup {
		hp.Argon2 = filestore.Argon2Params{Time: uint32(*argonTime), MemoryKiB: uint32(*argonMem), Threads: 1, KeyLen: 32}
		if err := makeBoxes(*mailroot, hp, *n); err != nil {
			fmt.Fprintln(os.Stderr, "loginstorm:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(storm(*addr, *n, *c, *pid))
}

func makeBoxes(root string, hp filestore.HashParams, n int) error {
	st, err := filestore.Open(root, filestore.Options{Node: 1, Hash: hp})
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.CreateDomain(ctx, domain); err != nil && !strings.Contains(err.Error(), "exists") {
		return err
	}
	for i := range n {
		a := store.Address{Mailbox: user(i), Domain: domain}
		if err := st.CreateMailbox(ctx, a, password(i)); err != nil {
			if err := st.SetPassword(ctx, a, password(i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func storm(addr string, n, c, pid int) int {
	cpu0 := procCPU(pid)
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	fails := map[string]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				err := login(addr, user(i)+"@"+domain, password(i))
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					fails[err.Error()]++
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(time.Millisecond)
	}
	fmt.Printf("logins %d ok %d in %s: %.1f logins/s, p50 %s p90 %s p99 %s max %s\n",
		n, len(lat), el.Round(time.Millisecond), float64(len(lat))/el.Seconds(), pct(0.5), pct(0.9), pct(0.99), pct(1))
	for e, k := range fails {
		fmt.Printf("failed %d: %s\n", k, e)
	}
	if pid > 0 {
		fmt.Printf("server pid %d: peak RSS %s, CPU %s during the storm\n", pid, procHWM(pid), (procCPU(pid) - cpu0).Round(time.Millisecond))
	}
	if len(fails) > 0 {
		return 1
	}
	return 0
}

func login(addr, name, pw string) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(120 * time.Second))
	r := bufio.NewReader(conn)
	for _, cmd := range []string{"", "USER " + name, "PASS " + pw, "QUIT"} {
		if cmd != "" {
			if _, err := fmt.Fprintf(conn, "%s\r\n", cmd); err != nil {
				return err
			}
		}
		l, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(l, "+OK") {
			verb, _, _ := strings.Cut(cmd, " ")
			return fmt.Errorf("%s: %s", verb, strings.TrimSpace(l))
		}
	}
	return nil
}

func procHWM(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// procCPU is the user and system time of pid (0: none).
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}
