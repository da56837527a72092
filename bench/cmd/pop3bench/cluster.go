package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pop3svc/pop3svc/bench/pop3c"
	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest/machines"
	"github.com/pop3svc/pop3svc/store"
	"github.com/pop3svc/pop3svc/store/filestore"
)

// clusterOptions configure pop3bench cluster.
type clusterOptions struct {
	Pop3d  string
	Work   string
	Out    string
	Stores []string // "gluster", "local"
	// GlusterVolume, when set, is a started volume (host:/name) to mount;
	// otherwise the bench brings its own up and down with .ci's scripts.
	GlusterVolume string
	Lease         time.Duration
	Users         int
	Senders       int
	Messages      int // acknowledged messages, at least
	Kills         int // kills, at least
	KillMin       time.Duration
	KillMax       time.Duration
	Down          time.Duration // longest time a killed server stays down
	Hold          time.Duration // longest pause between the last DELE and QUIT
	Drain         time.Duration
	Trials        int // SIGSTOP trials
	TrialK        int // sessions frozen per trial
	MaxRun        time.Duration
}

// Cluster bench constants.
const (
	clusterDomain   = "cluster.test"
	clusterPassword = "clusterpass"
	clusterPOP3Port = 1100
	clusterSMTPPort = 2525
	clusterIDHeader = "X-Bench-Id: "
	// clusterBenchNode is the node number of the bench's own store
	// handle (mailbox creation); the machines are nodes 1..3.
	clusterBenchNode = 99
	clusterTimeout   = 15 * time.Second
	// clusterRetry is the pause between attempts of a client that was
	// refused or could not connect.
	clusterRetry = 100 * time.Millisecond
	// stopMessages is how many messages each mailbox of the SIGSTOP
	// trials holds: its frozen session marks them all deleted.
	stopMessages = 3
)

// clusterArgon2 is the password hash of the bench's mailboxes and of the
// servers' auth settings: logins are not what this bench measures, and
// the default cost would make three servers on two cores CPU-bound.
var clusterArgon2 = filestore.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32}

func runCluster(ctx context.Context, args []string) error {
	var o clusterOptions
	fs := flag.NewFlagSet("cluster", flag.ExitOnError)
	quick := fs.Bool("quick", false, "a short run: 200 messages, 5 kills, 20 SIGSTOP trials")
	stores := fs.String("stores", "gluster,local", "mail roots to run on: gluster (a GlusterFS replica-2 volume, FUSE-mounted once per machine), local (a folder on local disk shared by the machines)")
	fs.StringVar(&o.Pop3d, "pop3d", "", "pop3d binary (default: go build ./cmd/pop3d into the work folder)")
	fs.StringVar(&o.Work, "work", "/tmp/pop3bench-cluster", "work folder (configurations, logs, local mail root, mount points)")
	fs.StringVar(&o.GlusterVolume, "gluster-volume", "", "a started GlusterFS volume (host:/name) to mount instead of bringing one up and down with .ci/gluster-up.sh and .ci/gluster-down.sh (the bench uses its folder pop3bench-mailroot)")
	fs.StringVar(&o.Out, "out", "", "write the results as JSON to this file")
	fs.DurationVar(&o.Lease, "lease", 3*time.Second, "the servers' lock_lease (pop3d accepts 3s or more)")
	fs.IntVar(&o.Users, "users", 12, "mailboxes, each read by its own POP3 client")
	fs.IntVar(&o.Senders, "senders", 3, "SMTP clients")
	fs.IntVar(&o.Messages, "messages", 1000, "run until at least this many messages were acknowledged (SMTP 250)")
	fs.IntVar(&o.Kills, "kills", 20, "and until at least this many kill -9 of a server")
	fs.DurationVar(&o.KillMin, "kill-min", time.Second, "shortest time between a server's restart and the next kill")
	fs.DurationVar(&o.KillMax, "kill-max", 4*time.Second, "longest time between a server's restart and the next kill")
	fs.DurationVar(&o.Down, "down", 0, "longest time a killed server stays down before its restart, chosen at random from 0 (0: twice the lease, so that its users' wait shows both a restart's clean-up and the lease running out)")
	fs.DurationVar(&o.Hold, "hold", 300*time.Millisecond, "longest random pause of a POP3 session between its DELEs and QUIT")
	fs.DurationVar(&o.Drain, "drain", 90*time.Second, "longest time to retrieve what is left after the load stops")
	fs.IntVar(&o.Trials, "trials", 200, "SIGSTOP trials (on the first store only; 0: none)")
	fs.IntVar(&o.TrialK, "trial-sessions", 3, "sessions held on the frozen server in each SIGSTOP trial")
	fs.DurationVar(&o.MaxRun, "max-run", 15*time.Minute, "longest load phase per store")
	fs.Parse(args)
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["messages"] {
			o.Messages = 200
		}
		if !set["kills"] {
			o.Kills = 5
		}
		if !set["trials"] {
			o.Trials = 20
		}
	}
	if o.Down == 0 {
		o.Down = 2 * o.Lease
	}
	o.Stores = strings.Split(*stores, ",")
	for _, s := range o.Stores {
		if s != "gluster" && s != "local" {
			return fmt.Errorf("cluster: unknown store %q (gluster, local)", s)
		}
	}
	if o.Lease < 3*time.Second {
		return fmt.Errorf("cluster: -lease %v is below pop3d's minimum of 3s", o.Lease)
	}
	if o.Users < 1 || o.Senders < 1 || o.KillMin <= 0 || o.KillMax < o.KillMin || o.TrialK < 1 {
		return fmt.Errorf("cluster: -users, -senders, -trial-sessions must be at least 1 and 0 < -kill-min <= -kill-max")
	}
	if err := machines.Check(); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := os.MkdirAll(o.Work, 0o755); err != nil {
		return err
	}
	var err error
	if o.Pop3d == "" {
		if o.Pop3d, err = buildTool(ctx, o.Work, "./cmd/pop3d"); err != nil {
			return err
		}
	}
	nt, err := machines.Build(3)
	if err != nil {
		return err
	}
	defer func() {
		if err := nt.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "pop3bench: removing the test machines:", err)
		}
	}()
	fmt.Printf("machines: %s (bridge %s)\n", machineList(nt), nt.Bridge)
	var results []*clusterResult
	for i, kind := range o.Stores {
		if ctx.Err() != nil {
			break
		}
		r, err := clusterRun(ctx, o, nt, kind, i == 0 && o.Trials > 0)
		if r != nil {
			results = append(results, r)
			r.print()
		}
		if err != nil {
			return err
		}
	}
	printClusterSummary(o, results)
	if o.Out != "" {
		f, err := os.Create(o.Out)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := writeJSON(f, results); err != nil {
			return err
		}
	}
	for _, r := range results {
		if !r.pass(o.Lease) {
			return errors.New("cluster: a bar failed (see above)")
		}
	}
	return nil
}

func machineList(nt *machines.Net) string {
	var s []string
	for _, m := range nt.Machines {
		s = append(s, m.Name+"="+m.Addr+"("+m.Host+")")
	}
	return strings.Join(s, " ")
}

// clusterResult is one store's run.
type clusterResult struct {
	Store          string  `json:"store"`
	LeaseSec       float64 `json:"lease_sec"`
	Seconds        float64 `json:"seconds"`
	Acknowledged   int     `json:"acknowledged"`
	Unacknowledged int     `json:"unacknowledged"` // transactions cut before their 250 (a kill)
	UnackedSeen    int     `json:"unacknowledged_retrieved"`
	Lost           int     `json:"lost"`
	Duplicated     int     `json:"duplicated"`
	// Unconfirmed are messages deleted by a QUIT whose reply never came
	// (the server was killed between its commit and its answer): the
	// client cannot know, so they are neither lost nor retrieved.
	Unconfirmed     int       `json:"unconfirmed_quit"`
	Kills           int       `json:"kills"`
	Sessions        int       `json:"sessions"` // committed (QUIT +OK)
	Refused         int       `json:"sessions_refused"`
	RefusedOther    int       `json:"sessions_refused_other"` // -ERR at login that is not [IN-USE]
	ConnectFailed   int       `json:"connect_failed"`
	QuitFenced      int       `json:"quit_fenced"` // QUIT answered -ERR
	Cut             int       `json:"sessions_cut"`
	SessionsPerSec  float64   `json:"sessions_per_sec"`
	DeliveriesPerS  float64   `json:"deliveries_per_sec"`
	Waits           []float64 `json:"killed_users_wait_sec"`
	WaitMax         float64   `json:"killed_users_wait_max_sec"`
	DrainSec        float64   `json:"drain_sec"`
	Trials          int       `json:"stop_trials"`
	TrialSessions   int       `json:"stop_trial_sessions"`
	LostLockDeletes int       `json:"lost_lock_deletions"`
	LostLockQuitOK  int       `json:"lost_lock_quit_ok"`
	TakeoverMax     float64   `json:"stop_takeover_max_sec"`
	FirstError      string    `json:"first_error,omitempty"`
}

func (r *clusterResult) pass(lease time.Duration) bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.LostLockDeletes == 0 && r.LostLockQuitOK == 0 &&
		r.WaitMax <= (lease+5*time.Second).Seconds()
}

func (r *clusterResult) print() {
	fmt.Printf("== %s: %.1fs load, lease %.0fs\n", r.Store, r.Seconds, r.LeaseSec)
	fmt.Printf("   acknowledged %d (cut before 250: %d, of which retrieved %d); lost %d, duplicated %d, deleted by a QUIT whose reply was lost %d\n",
		r.Acknowledged, r.Unacknowledged, r.UnackedSeen, r.Lost, r.Duplicated, r.Unconfirmed)
	fmt.Printf("   kills %d; sessions %d (%.1f/s), deliveries %.1f/s; refused [IN-USE] %d, other -ERR at login %d, connect failed %d, QUIT -ERR %d, cut by a kill %d\n",
		r.Kills, r.Sessions, r.SessionsPerSec, r.DeliveriesPerS, r.Refused, r.RefusedOther, r.ConnectFailed, r.QuitFenced, r.Cut)
	if len(r.Waits) > 0 {
		s := slices.Clone(r.Waits)
		slices.Sort(s)
		fmt.Printf("   killed machine's users back elsewhere: %d waits, p50 %.2fs, max %.2fs (bar: lease + 5s = %.0fs)\n",
			len(s), s[len(s)/2], r.WaitMax, r.LeaseSec+5)
	} else {
		fmt.Printf("   killed machine's users back elsewhere: no session was cut by a kill\n")
	}
	fmt.Printf("   drain %.1fs\n", r.DrainSec)
	if r.Trials > 0 {
		fmt.Printf("   SIGSTOP trials %d (%d frozen sessions): deletions by a session that lost its lock %d, its QUIT answered +OK %d, longest take-over %.2fs\n",
			r.Trials, r.TrialSessions, r.LostLockDeletes, r.LostLockQuitOK, r.TakeoverMax)
	}
	if r.FirstError != "" {
		fmt.Printf("   first error: %s\n", r.FirstError)
	}
}

func printClusterSummary(o clusterOptions, rs []*clusterResult) {
	fmt.Println("== summary")
	fmt.Printf("%-8s %8s %6s %4s %6s %6s %8s %10s %9s %8s %7s %9s\n",
		"store", "acked", "lost", "dup", "kills", "sess/s", "deliv/s", "refused", "wait max", "trials", "fenced", "lostdel")
	for _, r := range rs {
		fmt.Printf("%-8s %8d %6d %4d %6d %6.1f %8.1f %10d %8.2fs %8d %7d %9d\n",
			r.Store, r.Acknowledged, r.Lost, r.Duplicated, r.Kills, r.SessionsPerSec, r.DeliveriesPerS,
			r.Refused, r.WaitMax, r.Trials, r.TrialSessions, r.LostLockDeletes)
	}
	for _, r := range rs {
		ok := "pass"
		if !r.pass(o.Lease) {
			ok = "FAIL"
		}
		fmt.Printf("bars on %s: %s (0 lost, 0 duplicated, 0 deletions after a lost lock, users back within %v)\n", r.Store, ok, o.Lease+5*time.Second)
	}
}

// node is one machine's pop3d.
type node struct {
	m      *machines.Machine
	i      int // 1..3
	dir    string
	conf   string
	bin    string
	pop3   string
	smtp   string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	up     atomic.Bool
	gen    atomic.Int64 // incremented by every kill
}

func (n *node) start(ctx context.Context) error {
	log, err := os.OpenFile(filepath.Join(n.dir, "pop3d.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := n.m.Command(n.bin, "-config", n.conf)
	cmd.Dir = n.dir
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: cannot start pop3d: %w", n.m.Name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()
	end := time.Now().Add(StartWait)
	for {
		select {
		case <-exited:
			tail, _ := os.ReadFile(filepath.Join(n.dir, "pop3d.log"))
			return fmt.Errorf("%s: pop3d exited at start: %v\n%s", n.m.Name, cmd.ProcessState, lastLines(tail, 10))
		default:
		}
		c, err := pop3c.Dial(ctx, n.pop3, pop3c.Options{Timeout: 2 * time.Second})
		if err == nil {
			c.Close()
			if sc, err := net.DialTimeout("tcp", n.smtp, 2*time.Second); err == nil {
				sc.Close()
				n.up.Store(true)
				return nil
			}
		}
		if time.Now().After(end) || ctx.Err() != nil {
			return fmt.Errorf("%s: pop3d did not answer within %v", n.m.Name, StartWait)
		}
		time.Sleep(clusterRetry)
	}
}

func (n *node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd.Process.Signal(sig)
}

// kill sends SIGKILL and waits for the exit.
func (n *node) kill() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	n.up.Store(false)
	n.gen.Add(1)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// stop sends SIGTERM and waits up to StopWait, then kills.
func (n *node) stop() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	n.up.Store(false)
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(StopWait):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// clusterConf is a machine's pop3d configuration.
func clusterConf(root string, i int, m *machines.Machine, lease time.Duration) string {
	return fmt.Sprintf(`# pop3bench cluster: machine %[2]s
mailroot = %[1]q
node = %[3]d
lock_lease = %[4]q
[auth]
argon2_time = %[6]d
argon2_memory = "%[7]dKB"
argon2_threads = %[8]d
[pop3]
listen = ["%[5]s:%[9]d"]
listen_tls = []
[smtp]
listen = ["%[5]s:%[10]d"]
queue_scan = "2s"
[admin]
listen = "127.0.0.1:8110"
`, root, m.Name, i, lease.String(), m.Addr, clusterArgon2.Time, clusterArgon2.MemoryKiB, clusterArgon2.Threads,
		clusterPOP3Port, clusterSMTPPort)
}

// clusterStore prepares the mail root of one kind: the root each machine
// uses, and a function that undoes the preparation.
func clusterStore(ctx context.Context, o clusterOptions, kind string) (roots []string, undo func(), err error) {
	base := filepath.Join(o.Work, kind)
	if kind == "local" {
		root := filepath.Join(base, "mailroot")
		if err := os.RemoveAll(base); err != nil {
			return nil, nil, err
		}
		if err := os.MkdirAll(root, 0o700); err != nil {
			return nil, nil, err
		}
		return []string{root, root, root}, func() {}, nil
	}
	// GlusterFS: the repository's scripts bring the volume up and down
	// (a volume of its own, pop3bench), unless -gluster-volume names one.
	env := append(os.Environ(), "GLUSTER_VOLUME=pop3bench", "GLUSTER_BRICKS=/var/tmp/pop3bench-gluster")
	var mounts []string
	undo = func() {
		for _, m := range mounts {
			if out, err := exec.Command("umount", m).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "pop3bench: umount %s: %v: %s", m, err, out)
				_ = exec.Command("umount", "-l", m).Run()
			}
		}
		if o.GlusterVolume != "" {
			return
		}
		down := exec.Command("bash", ".ci/gluster-down.sh")
		down.Env = env
		if out, err := down.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "pop3bench: gluster-down: %v: %s", err, out)
		}
	}
	vol := o.GlusterVolume
	if vol == "" {
		fmt.Println("gluster: bringing the volume up (.ci/gluster-up.sh)")
		up := exec.CommandContext(ctx, "bash", ".ci/gluster-up.sh")
		up.Env = env
		up.Stderr = os.Stderr
		out, err := up.Output()
		if err != nil {
			undo()
			return nil, nil, fmt.Errorf("gluster-up: %w", err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		vol = lines[len(lines)-1]
	}
	for i := 1; i <= 3; i++ {
		mnt := filepath.Join(base, fmt.Sprintf("m%d", i))
		_ = exec.Command("umount", mnt).Run() // a mount left by an interrupted run
		if err := os.MkdirAll(mnt, 0o755); err != nil {
			undo()
			return nil, nil, err
		}
		if out, err := exec.CommandContext(ctx, "mount", "-t", "glusterfs", vol, mnt).CombinedOutput(); err != nil {
			undo()
			return nil, nil, fmt.Errorf("mount -t glusterfs %s %s: %v: %s", vol, mnt, err, out)
		}
		mounts = append(mounts, mnt)
		roots = append(roots, filepath.Join(mnt, "pop3bench-mailroot"))
	}
	if err := os.RemoveAll(roots[0]); err != nil {
		undo()
		return nil, nil, err
	}
	if err := os.MkdirAll(roots[0], 0o700); err != nil {
		undo()
		return nil, nil, err
	}
	fmt.Printf("gluster: volume %s mounted once per machine at %s/m1..m3\n", vol, base)
	return roots, undo, nil
}

func loadUser(i int) string { return fmt.Sprintf("load%03d", i) }
func stopUser(i int) string { return fmt.Sprintf("stop%03d", i) }

// makeMailboxes creates the bench's mailboxes through the store API.
func makeMailboxes(ctx context.Context, root string, o clusterOptions) error {
	st, err := filestore.Open(root, filestore.Options{Node: clusterBenchNode, Argon2: clusterArgon2, LockLease: o.Lease})
	if err != nil {
		return fmt.Errorf("cannot open the store at %s: %w", root, err)
	}
	defer st.Close()
	if err := st.CreateDomain(ctx, clusterDomain); err != nil {
		return fmt.Errorf("cannot create %s: %w", clusterDomain, err)
	}
	var names []string
	for i := 0; i < o.Users; i++ {
		names = append(names, loadUser(i))
	}
	for i := 0; i < o.TrialK; i++ {
		names = append(names, stopUser(i))
	}
	for _, n := range names {
		if err := st.CreateMailbox(ctx, store.Address{Mailbox: n, Domain: clusterDomain}, clusterPassword); err != nil {
			return fmt.Errorf("cannot create %s@%s: %w", n, clusterDomain, err)
		}
	}
	for i := 0; i < o.TrialK; i++ {
		for j := 0; j < stopMessages; j++ {
			msg := fmt.Sprintf("From: bench@example.org\r\nSubject: stop %d\r\n%sstop-%d-%d\r\n\r\nheld by the SIGSTOP trials\r\n", j, clusterIDHeader, i, j)
			if _, err := st.Deliver(ctx, store.Address{Mailbox: stopUser(i), Domain: clusterDomain}, strings.NewReader(msg)); err != nil {
				return err
			}
		}
	}
	return nil
}

// clusterState is what the clients of one run share.
type clusterState struct {
	o     clusterOptions
	nodes []*node

	mu         sync.Mutex
	acked      map[string]bool     // id → acknowledged
	unacked    map[string]bool     // sent, cut before the reply to DATA
	committed  map[string]int      // id → retrieved by sessions whose QUIT answered +OK
	unsure     map[string]int      // id → retrieved by sessions whose QUIT got no reply
	where      map[string][]string // id → machine and time of each committed retrieval
	killedAt   []time.Time         // per node: the last kill
	waits      []float64
	firstError string

	seq                                          atomic.Int64
	sessions, refused, refusedOther, connectFail atomic.Int64
	quitFenced, cut, kills                       atomic.Int64

	stopLoad  atomic.Bool // senders and the killer stop
	stopReads atomic.Bool // readers stop
}

func (s *clusterState) fail(format string, a ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.firstError == "" {
		s.firstError = fmt.Sprintf(format, a...)
	}
}

// clusterRun runs the load with kills on one store kind, then (trials)
// the SIGSTOP trials.
func clusterRun(ctx context.Context, o clusterOptions, nt *machines.Net, kind string, trials bool) (*clusterResult, error) {
	roots, undo, err := clusterStore(ctx, o, kind)
	if err != nil {
		return nil, err
	}
	defer undo()
	if err := makeMailboxes(ctx, roots[0], o); err != nil {
		return nil, err
	}
	s := &clusterState{o: o, acked: map[string]bool{}, unacked: map[string]bool{}, committed: map[string]int{},
		unsure: map[string]int{}, where: map[string][]string{}, killedAt: make([]time.Time, 3)}
	for i, m := range nt.Machines {
		dir := filepath.Join(o.Work, kind, "run-"+m.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		n := &node{m: m, i: i + 1, dir: dir, conf: filepath.Join(dir, "pop3d.toml"), bin: o.Pop3d,
			pop3: net.JoinHostPort(m.Addr, fmt.Sprint(clusterPOP3Port)), smtp: net.JoinHostPort(m.Addr, fmt.Sprint(clusterSMTPPort))}
		if err := os.WriteFile(n.conf, []byte(clusterConf(roots[i], i+1, m, o.Lease)), 0o644); err != nil {
			return nil, err
		}
		_ = os.Remove(filepath.Join(dir, "pop3d.log"))
		s.nodes = append(s.nodes, n)
	}
	defer func() {
		for _, n := range s.nodes {
			n.stop()
		}
	}()
	for _, n := range s.nodes {
		if err := n.start(ctx); err != nil {
			return nil, err
		}
	}
	fmt.Printf("%s: 3 servers up (lease %v); load until %d acknowledged messages and %d kills\n", kind, o.Lease, o.Messages, o.Kills)
	r := &clusterResult{Store: kind, LeaseSec: o.Lease.Seconds()}
	if err := s.load(ctx, r); err != nil {
		return r, err
	}
	if trials && ctx.Err() == nil {
		if err := s.stopTrials(ctx, r); err != nil {
			return r, err
		}
	}
	return r, ctx.Err()
}

// load runs senders, readers and the killer, then drains and checks.
func (s *clusterState) load(ctx context.Context, r *clusterResult) error {
	o := s.o
	start := time.Now()
	var loadWG, readWG sync.WaitGroup
	for k := 0; k < o.Senders; k++ {
		loadWG.Add(1)
		go func() { defer loadWG.Done(); s.sender(ctx, k) }()
	}
	for u := 0; u < o.Users; u++ {
		readWG.Add(1)
		go func() { defer readWG.Done(); s.reader(ctx, loadUser(u)) }()
	}
	loadWG.Add(1)
	var killErr error
	go func() { defer loadWG.Done(); killErr = s.killer(ctx) }()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		s.mu.Lock()
		acked := len(s.acked)
		s.mu.Unlock()
		kills := int(s.kills.Load())
		if acked >= o.Messages && kills >= o.Kills || time.Since(start) > o.MaxRun || ctx.Err() != nil || killErr != nil {
			break
		}
		select {
		case <-tick.C:
			fmt.Printf("   %5.0fs acknowledged %d, kills %d, sessions %d, refused %d\n", time.Since(start).Seconds(), acked, kills, s.sessions.Load(), s.refused.Load())
		case <-time.After(200 * time.Millisecond):
		}
	}
	s.stopLoad.Store(true)
	loadWG.Wait()
	loadEnd := time.Now()
	r.Seconds = loadEnd.Sub(start).Seconds()
	sessionsAtLoadEnd := s.sessions.Load()
	s.mu.Lock()
	r.Acknowledged = len(s.acked)
	s.mu.Unlock()
	if killErr != nil {
		s.stopReads.Store(true)
		readWG.Wait()
		return killErr
	}
	// Drain: the readers go on until every acknowledged message was
	// retrieved (or a QUIT that took it got no reply), or -drain passed.
	for time.Since(loadEnd) < o.Drain && ctx.Err() == nil {
		if s.outstanding() == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.stopReads.Store(true)
	readWG.Wait()
	r.DrainSec = time.Since(loadEnd).Seconds()
	// What is left in the mailboxes, read without deleting.
	left := map[string]int{}
	for u := 0; u < o.Users; u++ {
		ids, err := s.peek(ctx, loadUser(u))
		if err != nil {
			return fmt.Errorf("reading what is left of %s: %w", loadUser(u), err)
		}
		for _, id := range ids {
			left[id]++
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := tallyIDs(s.acked, s.committed, s.unsure, left)
	r.Lost, r.Duplicated, r.Unconfirmed = len(v.lost), len(v.duplicated), v.unconfirmed
	for i, id := range v.lost {
		if i < 5 {
			fmt.Printf("   lost: %s\n", id)
		}
	}
	for i, id := range v.duplicated {
		if i < 5 {
			fmt.Printf("   duplicated: %s (%d retrieved: %s; %d left)\n", id, s.committed[id], strings.Join(s.where[id], ", "), left[id])
		}
	}
	r.Unacknowledged = len(s.unacked)
	for id := range s.unacked {
		if s.committed[id]+left[id]+s.unsure[id] > 0 {
			r.UnackedSeen++
		}
	}
	r.Kills = int(s.kills.Load())
	r.Sessions = int(s.sessions.Load())
	r.Refused = int(s.refused.Load())
	r.RefusedOther = int(s.refusedOther.Load())
	r.ConnectFailed = int(s.connectFail.Load())
	r.QuitFenced = int(s.quitFenced.Load())
	r.Cut = int(s.cut.Load())
	r.SessionsPerSec = float64(sessionsAtLoadEnd) / r.Seconds
	r.DeliveriesPerS = float64(r.Acknowledged) / r.Seconds
	r.Waits = s.waits
	for _, w := range s.waits {
		r.WaitMax = max(r.WaitMax, w)
	}
	r.FirstError = s.firstError
	return nil
}

// idVerdict is what became of the acknowledged messages.
type idVerdict struct {
	lost, duplicated []string
	unconfirmed      int
}

// tallyIDs judges every acknowledged id by how often it was retrieved by
// sessions whose QUIT answered +OK (committed), by sessions whose QUIT got
// no reply (unsure) and how often it is still in a mailbox (left). Once in
// all is right; an id retrieved only by a session whose QUIT got no reply
// and gone from its mailbox was deleted by that QUIT (the server died
// between its commit and its answer): the client holds it, so it is
// counted apart, neither lost nor duplicated.
func tallyIDs(acked map[string]bool, committed, unsure, left map[string]int) idVerdict {
	var v idVerdict
	for id := range acked {
		n := committed[id] + left[id]
		switch {
		case n == 0 && unsure[id] > 0:
			v.unconfirmed++
		case n == 0:
			v.lost = append(v.lost, id)
		case n > 1:
			v.duplicated = append(v.duplicated, id)
		}
	}
	slices.Sort(v.lost)
	slices.Sort(v.duplicated)
	return v
}

// outstanding counts acknowledged messages not yet retrieved.
func (s *clusterState) outstanding() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id := range s.acked {
		if s.committed[id] == 0 && s.unsure[id] == 0 {
			n++
		}
	}
	return n
}

// killer kills a random machine's pop3d with SIGKILL at random moments
// and restarts it.
func (s *clusterState) killer(ctx context.Context) error {
	o := s.o
	for !s.stopLoad.Load() && ctx.Err() == nil {
		d := o.KillMin + rand.N(o.KillMax-o.KillMin+1)
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if s.stopLoad.Load() || ctx.Err() != nil {
				return nil
			}
		}
		k := rand.N(len(s.nodes))
		n := s.nodes[k]
		s.mu.Lock()
		s.killedAt[k] = time.Now()
		s.mu.Unlock()
		n.kill()
		s.kills.Add(1)
		for end := time.Now().Add(rand.N(o.Down + 1)); time.Now().Before(end) && ctx.Err() == nil; {
			time.Sleep(20 * time.Millisecond)
		}
		if err := n.start(ctx); err != nil {
			return fmt.Errorf("restart after kill -9: %w", err)
		}
	}
	return nil
}

// sender delivers messages over SMTP to random mailboxes through random
// machines; each carries a unique id, recorded when the server
// acknowledged it with 250.
func (s *clusterState) sender(ctx context.Context, k int) {
	for !s.stopLoad.Load() && ctx.Err() == nil {
		n := s.nodes[rand.N(len(s.nodes))]
		if err := s.smtpConn(ctx, n, k); err != nil {
			time.Sleep(clusterRetry)
		}
	}
}

func (s *clusterState) smtpConn(ctx context.Context, n *node, k int) error {
	d := net.Dialer{Timeout: clusterTimeout}
	nc, err := d.DialContext(ctx, "tcp", n.smtp)
	if err != nil {
		return err
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	bw := bufio.NewWriter(nc)
	reply := func() (string, error) {
		_ = nc.SetReadDeadline(time.Now().Add(clusterTimeout))
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return "", err
			}
			if len(l) < 4 {
				return "", fmt.Errorf("SMTP reply %q", l)
			}
			if l[3] != '-' {
				return strings.TrimRight(l, "\r\n"), nil
			}
		}
	}
	cmd := func(want byte, format string, a ...any) error {
		_ = nc.SetWriteDeadline(time.Now().Add(clusterTimeout))
		fmt.Fprintf(bw, format+"\r\n", a...)
		if err := bw.Flush(); err != nil {
			return err
		}
		l, err := reply()
		if err != nil {
			return err
		}
		if l[0] != want {
			return fmt.Errorf("SMTP %q: %s", fmt.Sprintf(format, a...), l)
		}
		return nil
	}
	if l, err := reply(); err != nil || l[0] != '2' {
		return fmt.Errorf("greeting %q: %v", l, err)
	}
	if err := cmd('2', "EHLO sender%d.bench", k); err != nil {
		return err
	}
	for j := 0; j < 20 && !s.stopLoad.Load(); j++ {
		user := loadUser(rand.N(s.o.Users))
		id := fmt.Sprintf("%s-%d-%d", n.m.Name, k, s.seq.Add(1))
		if err := cmd('2', "MAIL FROM:<sender%d@example.org>", k); err != nil {
			return err
		}
		if err := cmd('2', "RCPT TO:<%s@%s>", user, clusterDomain); err != nil {
			return err
		}
		if err := cmd('3', "DATA"); err != nil {
			return err
		}
		s.mu.Lock()
		s.unacked[id] = true
		s.mu.Unlock()
		fmt.Fprintf(bw, "From: sender%d@example.org\r\nTo: %s@%s\r\nSubject: cluster %s\r\n%s%s\r\n\r\n", k, user, clusterDomain, id, clusterIDHeader, id)
		for l := 0; l < 20; l++ {
			fmt.Fprintf(bw, "line %d of message %s, sent through %s\r\n", l, id, n.m.Name)
		}
		_ = nc.SetWriteDeadline(time.Now().Add(clusterTimeout))
		bw.WriteString(".\r\n")
		if err := bw.Flush(); err != nil {
			return err
		}
		l, err := reply()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(l, "250") {
			return fmt.Errorf("after DATA: %s", l)
		}
		s.mu.Lock()
		delete(s.unacked, id)
		s.acked[id] = true
		s.mu.Unlock()
	}
	return cmd('2', "QUIT")
}

// benchID reads the X-Bench-Id header of a message.
func benchID(msg []byte) string {
	head, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	for _, l := range bytes.Split(head, []byte("\r\n")) {
		if v, ok := bytes.CutPrefix(l, []byte(clusterIDHeader)); ok {
			return string(v)
		}
	}
	return ""
}

// reader runs POP3 sessions for one mailbox through random machines:
// RETR every message, DELE it, pause, QUIT.
func (s *clusterState) reader(ctx context.Context, user string) {
	var killedWait *struct {
		k  int
		at time.Time
	}
	for !s.stopReads.Load() && ctx.Err() == nil {
		k := rand.N(len(s.nodes))
		if killedWait != nil && k == killedWait.k {
			continue // back elsewhere: not on the machine that was killed
		}
		n := s.nodes[k]
		gen := n.gen.Load()
		c, err := pop3c.Dial(ctx, n.pop3, pop3c.Options{Timeout: clusterTimeout})
		if err != nil {
			s.connectFail.Add(1)
			time.Sleep(clusterRetry)
			continue
		}
		if err := c.Login(user+"@"+clusterDomain, clusterPassword); err != nil {
			c.Close()
			switch {
			case errors.Is(err, pop3c.ErrResponse) && strings.Contains(err.Error(), "[IN-USE]"):
				s.refused.Add(1)
			case errors.Is(err, pop3c.ErrResponse):
				s.refusedOther.Add(1)
				s.fail("login %s on %s: %v", user, n.m.Name, err)
			default:
				s.connectFail.Add(1)
			}
			time.Sleep(clusterRetry)
			continue
		}
		if killedWait != nil {
			s.mu.Lock()
			s.waits = append(s.waits, time.Since(killedWait.at).Seconds())
			s.mu.Unlock()
			killedWait = nil
		}
		ids, quitSent, err := s.session(c)
		if err == nil {
			s.sessions.Add(1)
			at := fmt.Sprintf("%s %s", n.m.Name, time.Now().Format("15:04:05.000"))
			s.mu.Lock()
			for _, id := range ids {
				s.committed[id]++
				s.where[id] = append(s.where[id], at)
			}
			s.mu.Unlock()
			if len(ids) == 0 {
				time.Sleep(clusterRetry) // an empty mailbox: do not spin
			}
			continue
		}
		if errors.Is(err, pop3c.ErrResponse) {
			if quitSent {
				s.quitFenced.Add(1)
			} else {
				s.fail("session of %s on %s: %v", user, n.m.Name, err)
			}
			continue
		}
		// The connection broke: a kill of its machine, if the generation moved.
		if quitSent {
			s.mu.Lock()
			for _, id := range ids {
				s.unsure[id]++
			}
			s.mu.Unlock()
		}
		if n.gen.Load() != gen {
			s.cut.Add(1)
			s.mu.Lock()
			at := s.killedAt[k]
			s.mu.Unlock()
			killedWait = &struct {
				k  int
				at time.Time
			}{k, at}
		} else {
			s.fail("session of %s on %s broke without a kill: %v", user, n.m.Name, err)
		}
	}
}

// session runs one logged-in session: the ids it retrieved and marked
// deleted, whether QUIT was sent, and the first error.
func (s *clusterState) session(c *pop3c.Conn) (ids []string, quitSent bool, err error) {
	defer c.Close()
	list, err := c.List()
	if err != nil {
		return nil, false, err
	}
	var buf bytes.Buffer
	for _, e := range list {
		buf.Reset()
		if _, err := c.RetrTo(e.N, &buf); err != nil {
			return nil, false, err
		}
		id := benchID(buf.Bytes())
		if id == "" {
			return nil, false, fmt.Errorf("message %d has no %s header", e.N, strings.TrimSpace(clusterIDHeader))
		}
		if err := c.Dele(e.N); err != nil {
			return nil, false, err
		}
		ids = append(ids, id)
	}
	if s.o.Hold > 0 {
		time.Sleep(rand.N(s.o.Hold))
	}
	return ids, true, c.Quit()
}

// peek lists the ids left in a mailbox without deleting them.
func (s *clusterState) peek(ctx context.Context, user string) ([]string, error) {
	var lastErr error
	for try := 0; try < 100; try++ {
		n := s.nodes[try%len(s.nodes)]
		c, err := pop3c.Dial(ctx, n.pop3, pop3c.Options{Timeout: clusterTimeout})
		if err != nil {
			lastErr = err
			time.Sleep(clusterRetry)
			continue
		}
		if err := c.Login(user+"@"+clusterDomain, clusterPassword); err != nil {
			c.Close()
			lastErr = err
			time.Sleep(clusterRetry)
			continue
		}
		list, err := c.List()
		if err != nil {
			c.Close()
			return nil, err
		}
		var ids []string
		var buf bytes.Buffer
		for _, e := range list {
			buf.Reset()
			if _, err := c.RetrTo(e.N, &buf); err != nil {
				c.Close()
				return nil, err
			}
			ids = append(ids, benchID(buf.Bytes()))
		}
		return ids, c.Quit()
	}
	return nil, lastErr
}

// stopTrials: each trial logs TrialK sessions in on machine A, marks
// every message deleted, freezes A's pop3d (SIGSTOP) until machine B has
// taken every mailbox over (so past the lease), thaws it and sends the
// frozen sessions' QUIT; then machine C counts the messages. Every
// message a frozen session marked must still be there.
func (s *clusterState) stopTrials(ctx context.Context, r *clusterResult) error {
	o := s.o
	fmt.Printf("%s: %d SIGSTOP trials, %d frozen sessions each\n", r.Store, o.Trials, o.TrialK)
	start := time.Now()
	for t := 0; t < o.Trials && ctx.Err() == nil; t++ {
		a, b, c := s.nodes[t%3], s.nodes[(t+1)%3], s.nodes[(t+2)%3]
		frozen := make([]*pop3c.Conn, o.TrialK)
		for i := range frozen {
			conn, err := s.loginUntil(ctx, a, stopUser(i), 4*o.Lease+10*time.Second)
			if err != nil {
				return fmt.Errorf("trial %d: login on %s: %w", t, a.m.Name, err)
			}
			frozen[i] = conn
			n, _, err := conn.Stat()
			if err != nil || n != stopMessages {
				return fmt.Errorf("trial %d: STAT of %s = %d, %v; want %d", t, stopUser(i), n, err, stopMessages)
			}
			for j := 1; j <= n; j++ {
				if err := conn.Dele(j); err != nil {
					return fmt.Errorf("trial %d: DELE %d: %w", t, j, err)
				}
			}
		}
		t0 := time.Now()
		if err := a.signal(syscall.SIGSTOP); err != nil {
			return err
		}
		takers := make([]*pop3c.Conn, o.TrialK)
		var terr error
		for i := range takers {
			conn, err := s.loginUntil(ctx, b, stopUser(i), 4*o.Lease+10*time.Second)
			if err != nil {
				terr = fmt.Errorf("trial %d: take-over on %s: %w", t, b.m.Name, err)
				break
			}
			takers[i] = conn
		}
		r.TakeoverMax = max(r.TakeoverMax, time.Since(t0).Seconds())
		if err := a.signal(syscall.SIGCONT); err != nil {
			return err
		}
		if terr != nil {
			return terr
		}
		for i, conn := range frozen {
			r.TrialSessions++
			if err := conn.Quit(); err == nil {
				r.LostLockQuitOK++
				fmt.Printf("   trial %d: the frozen session of %s answered QUIT with +OK\n", t, stopUser(i))
			} else if !errors.Is(err, pop3c.ErrResponse) {
				return fmt.Errorf("trial %d: QUIT of the frozen session: %w", t, err)
			}
		}
		for _, conn := range takers {
			if err := conn.Quit(); err != nil {
				return fmt.Errorf("trial %d: QUIT of the take-over session: %w", t, err)
			}
		}
		for i := range frozen {
			conn, err := s.loginUntil(ctx, c, stopUser(i), 4*o.Lease+10*time.Second)
			if err != nil {
				return fmt.Errorf("trial %d: check on %s: %w", t, c.m.Name, err)
			}
			n, _, err := conn.Stat()
			conn.Quit()
			if err != nil {
				return fmt.Errorf("trial %d: STAT: %w", t, err)
			}
			if n < stopMessages {
				r.LostLockDeletes += stopMessages - n
				fmt.Printf("   trial %d: %s has %d messages, want %d: deleted by a session that lost its lock\n", t, stopUser(i), n, stopMessages)
				return fmt.Errorf("trial %d: deletions by a session that lost its lock", t)
			}
		}
		r.Trials++
		if (t+1)%20 == 0 {
			fmt.Printf("   %d trials in %.0fs\n", t+1, time.Since(start).Seconds())
		}
	}
	return nil
}

// loginUntil logs user in on n, retrying while the mailbox is in use,
// up to within.
func (s *clusterState) loginUntil(ctx context.Context, n *node, user string, within time.Duration) (*pop3c.Conn, error) {
	end := time.Now().Add(within)
	for {
		c, err := pop3c.Dial(ctx, n.pop3, pop3c.Options{Timeout: clusterTimeout})
		if err != nil {
			return nil, err
		}
		err = c.Login(user+"@"+clusterDomain, clusterPassword)
		if err == nil {
			return c, nil
		}
		c.Close()
		if !strings.Contains(err.Error(), "[IN-USE]") {
			return nil, err
		}
		if time.Now().After(end) || ctx.Err() != nil {
			return nil, fmt.Errorf("still in use after %v: %w", within, err)
		}
		time.Sleep(clusterRetry)
	}
}
