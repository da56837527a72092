package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pop3svc/pop3svc/bench/corpus"
	"github.com/pop3svc/pop3svc/bench/proc"
	"github.com/pop3svc/pop3svc/bench/report"
)

// compareOptions is the comparison's matrix.
type compareOptions struct {
	Work          string
	Out           string
	Pop3d         string
	Pop3ctl       string
	Dovecot       string
	Scheme        string        // Dovecot's scheme when Pair is nil (attack)
	Pair          *pairing      // the hash and auth cache both servers use; nil: each its own
	PairScheme    string        // -scheme
	AuthCacheTTL  time.Duration // -auth-cache-ttl
	Servers       []string
	Rounds        int
	Dur           time.Duration
	Concs         []int
	RetrConc      int
	TLS           bool
	Idle          int // pre-login idle connections
	IdleLogin     int // logged-in idle sessions (pop3d)
	IdleLoginPeer int // logged-in idle sessions (Dovecot: one process each)
	SMTPConc      int
	Import        string // store | pop3ctl
	Profile       string // folder for pop3d's CPU profiles of each run; "": none
}

func runCompare(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("compare", flag.ExitOnError)
	spec := corpusFlags(fs)
	o := compareOptions{}
	quick := fs.Bool("quick", false, "a short matrix (under 2 minutes)")
	fs.StringVar(&o.Work, "work", filepath.Join(os.TempDir(), "pop3bench"), "work folder: corpora (kept between runs), configs, logs")
	fs.StringVar(&o.Out, "out", "", "folder for results.json and report.html (default: the work folder)")
	fs.StringVar(&o.Pop3d, "pop3d", "", "pop3d binary (default: go build ./cmd/pop3d into the work folder)")
	fs.StringVar(&o.Pop3ctl, "pop3ctl", "", "pop3ctl binary for -import pop3ctl (default: go build ./cmd/pop3ctl)")
	fs.StringVar(&o.Dovecot, "dovecot", "/usr/sbin/dovecot", "Dovecot binary (installed from dovecot-pop3d when missing)")
	fs.StringVar(&o.PairScheme, "scheme", "sha512-crypt", "password hash of both servers, same parameters: sha512-crypt or argon2id")
	fs.DurationVar(&o.AuthCacheTTL, "auth-cache-ttl", 10*time.Minute, "both servers' auth cache lifetime (pop3d auth.cache_ttl; Dovecot auth_cache_ttl with auth_cache_size "+DovecotAuthCacheSize+")")
	servers := fs.String("servers", "pop3d,dovecot", "servers to run, in order")
	fs.IntVar(&o.Rounds, "rounds", 2, "rounds of the interleaved matrix")
	fs.DurationVar(&o.Dur, "d", 8*time.Second, "duration of each timed run")
	concs := fs.String("c", "1,16,64", "sessions: concurrency levels")
	fs.IntVar(&o.RetrConc, "retr-c", 1, "retr and retr-att: concurrent clients")
	fs.StringVar(&o.Profile, "profile", "", "write a pprof CPU profile of pop3d for each of its timed runs into this folder (admin.pprof on)")
	fs.BoolVar(&o.TLS, "tls", false, "also run sessions-tls, retr-att-tls and retr-tls (POP3S)")
	fs.IntVar(&o.Idle, "idle", 19000, "idle connections before login (0: skip)")
	fs.IntVar(&o.IdleLogin, "idle-login", 10000, "logged-in idle sessions on pop3d (0: skip)")
	fs.IntVar(&o.IdleLoginPeer, "idle-login-peer", 2000, "logged-in idle sessions on Dovecot (a process each)")
	fs.IntVar(&o.SMTPConc, "smtp-c", 8, "smtp: concurrent senders (pop3d only; 0: skip)")
	fs.StringVar(&o.Import, "import", "", "how the corpus enters pop3d's store: store (the store API) or pop3ctl (default: store when built in)")
	fs.Parse(args)
	if *quick { // shorter defaults; flags given explicitly win
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quickly := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		quickly("rounds", func() { o.Rounds = 1 })
		quickly("d", func() { o.Dur = 3 * time.Second })
		quickly("c", func() { *concs = "16,64" })
		quickly("idle", func() { o.Idle = 5000 })
		quickly("idle-login", func() { o.IdleLogin = 1000 })
		quickly("idle-login-peer", func() { o.IdleLoginPeer = 500 })
	}
	var err error
	if o.Concs, err = parseInts(*concs); err != nil {
		return err
	}
	o.Servers = strings.Split(*servers, ",")
	if o.Out == "" {
		o.Out = o.Work
	}
	spec.Idle = max(spec.Idle, o.IdleLogin, o.IdleLoginPeer)
	for _, c := range o.Concs {
		spec.Users = max(spec.Users, c)
	}
	spec.Big = max(spec.Big, o.RetrConc)
	if err := spec.Validate(); err != nil {
		return err
	}
	for _, d := range []string{o.Work, o.Out, o.Profile} {
		if d == "" {
			continue
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	os.Chmod(o.Work, 0o755) // the peer's mail user reads its Maildir under here
	loopbackFile, err := writeLoopbackFile(o.Work, *spec)
	if err != nil {
		return err
	}
	res := &report.Results{Started: time.Now(), Command: strings.Join(os.Args, " "), Host: hostname(), Notes: map[string]string{}}
	res.Notes["corpus"] = fmt.Sprintf("seed %d, %d mailboxes × %d messages (%.1f MB), %d × 2 × 10 MiB (text with one line in six dot-stuffed; MIME with a base64 attachment), %d idle mailboxes",
		spec.Seed, spec.Users, spec.PerUser, float64(spec.TotalBytes())/1e6, spec.Big, spec.Idle)
	res.Notes["machine"] = fmt.Sprintf("%d CPUs shared by client and servers", numCPU())
	bin := ""
	if slices.Contains(o.Servers, "dovecot") {
		if err := ensureDovecot(ctx, o.Dovecot); err == nil {
			bin = o.Dovecot
		}
	}
	pair, err := pairScheme(ctx, bin, o.PairScheme, spec.Password, o.AuthCacheTTL)
	if err != nil {
		return err
	}
	o.Pair, o.Scheme = &pair, Schemes[pair.Scheme]
	res.Notes["password scheme"] = pair.String()
	fmt.Println("password scheme:", pair.String())

	// Start the servers.
	started := map[string]*server{}
	defer func() {
		for _, s := range started {
			s.stop()
		}
	}()
	for _, name := range o.Servers {
		var s *server
		var err error
		switch name {
		case "dovecot":
			s, err = setupDovecot(ctx, o, *spec)
			res.Notes["dovecot"] = fmt.Sprintf("%s, passwd-file %s, auth_cache_size %s, Maildir, pop3-login service_count=0 process_min_avail=2 client_limit=%d", o.Dovecot, o.Pair.DovecotDesc, DovecotAuthCacheSize, DovecotLoginClients)
		case "pop3d":
			s, err = setupPop3d(ctx, o, *spec)
		default:
			err = fmt.Errorf("unknown server %q (pop3d, dovecot)", name)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "pop3bench: %s not run: %v\n", name, err)
			res.Notes[name+" skipped"] = err.Error()
			continue
		}
		started[name] = s
		fmt.Printf("%s: pid %d, POP3 %s\n", name, s.pid(), s.addr)
	}
	if len(started) == 0 {
		return fmt.Errorf("no server could be started")
	}
	order := []*server{}
	for _, n := range o.Servers {
		if s := started[n]; s != nil {
			order = append(order, s)
		}
	}
	profileOn := false // the timed runs only, not the idle scenarios
	add := func(s *server, round int, fn func(t *target) (report.Run, error), tls bool) {
		if ctx.Err() != nil {
			return
		}
		t := &target{Addr: s.addr, SMTP: s.smtp, Spec: *spec, Timeout: 60 * time.Second}
		if tls {
			if s.tlsAddr == "" {
				return
			}
			if c, err := net.DialTimeout("tcp", s.tlsAddr, 2*time.Second); err != nil {
				res.Notes[s.name+" TLS"] = fmt.Sprintf("POP3S %s not served: %v", s.tlsAddr, err)
				return
			} else {
				c.Close()
			}
			t.Addr, t.TLS = s.tlsAddr, benchTLS()
		}
		var prof chan []byte
		if o.Profile != "" && s.admin != "" && profileOn {
			prof = make(chan []byte, 1)
			go func() { prof <- fetchProfile(ctx, s.admin, o.Dur) }()
		}
		r, err := measured(s.pid(), func() (report.Run, error) { return fn(t) })
		r.Server, r.Round = s.name, round
		if prof != nil {
			if b := <-prof; len(b) > 0 {
				name := filepath.Join(o.Profile, fmt.Sprintf("%s-%s-c%d-r%d.pprof", s.name, r.Scenario, r.Concurrency, round))
				if err := os.WriteFile(name, b, 0o644); err == nil {
					fmt.Println("profile:", name)
				}
			}
		}
		if err != nil {
			r.Errors++
			if r.FirstError == "" {
				r.FirstError = err.Error()
			}
		}
		if r.Scenario == "idle-prelogin" || r.Scenario == "idle-login" {
			if r.Conns > 0 && r.ServerPSSAfter > 0 {
				r.PSSPerConn = float64(r.ServerPSSAfter-r.ServerPSSBefore) / float64(r.Conns)
			}
		}
		res.Runs = append(res.Runs, r)
		printRun(r)
		res.Save(filepath.Join(o.Out, "results.json"))
		time.Sleep(PauseBetweenRuns)
	}
	timed := func(label string, fn func(t *target) (report.Run, error)) func(t *target) (report.Run, error) {
		return func(t *target) (report.Run, error) {
			bar := startProgress(label, o.Dur)
			defer bar.end()
			t.Progress = bar
			return fn(t)
		}
	}
	// Idle scenarios first, one round each, interleaved: the servers'
	// memory is then not yet swollen by the load runs.
	if o.Idle > 0 {
		for _, s := range order {
			if fresh(ctx, s) {
				add(s, 1, idleRun(ctx, s, o.Idle, false, *spec), false)
			}
		}
	}
	if o.IdleLogin > 0 {
		for _, s := range order {
			n := o.IdleLogin
			if s.name == "dovecot" {
				n = o.IdleLoginPeer
			}
			if fresh(ctx, s) {
				add(s, 1, idleRun(ctx, s, n, true, *spec), false)
			}
		}
	}
	// Warm up: one session per mailbox, so first-access work (indexes,
	// caches) is not measured.
	for _, s := range order {
		t := &target{Addr: s.addr, Spec: *spec, Timeout: 60 * time.Second}
		r, err := t.runWarm(ctx)
		if err != nil || r.Errors > 0 {
			fmt.Fprintf(os.Stderr, "pop3bench: warm-up of %s: %v %s\n", s.name, err, r.FirstError)
		}
	}
	profileOn = true
	for round := 1; round <= o.Rounds; round++ {
		for _, c := range o.Concs {
			for _, s := range order {
				add(s, round, timed(fmt.Sprintf("%s sessions c=%d", s.name, c), func(t *target) (report.Run, error) { return t.runSessions(ctx, c, o.Dur) }), false)
			}
		}
		// The machine's own limit, right before the RETR runs it is
		// held against; then the diagnostic reference beside it, the
		// same reader with a sender that sends the attachment message
		// from a file with sendfile.
		machine := func(run func() (report.Run, error)) {
			if ctx.Err() != nil {
				return
			}
			r, err := run()
			r.Round = round
			if err != nil {
				r.Errors, r.FirstError = 1, err.Error()
			}
			res.Runs = append(res.Runs, r)
			printRun(r)
			res.Save(filepath.Join(o.Out, "results.json"))
		}
		machine(func() (report.Run, error) { return loopbackRun(ctx, o.Dur) })
		machine(func() (report.Run, error) { return loopbackFileRun(ctx, o.Dur, loopbackFile) })
		// Both big messages, each server in turn: the attachment
		// (nothing to stuff), then the text (one line in six stuffed).
		retr := func(tls bool) {
			for _, msg := range []int{corpus.BigAttachmentMsg, corpus.BigTextMsg} {
				for _, s := range order {
					add(s, round, timed(s.name+" "+retrScenario(msg, tls), func(t *target) (report.Run, error) { return t.runRetr(ctx, o.RetrConc, o.Dur, msg) }), tls)
				}
			}
		}
		retr(false)
		if o.TLS {
			for _, s := range order {
				c := o.Concs[len(o.Concs)-1]
				add(s, round, timed(s.name+" sessions-tls", func(t *target) (report.Run, error) { return t.runSessions(ctx, c, o.Dur) }), true)
			}
			retr(true)
		}
	}
	if o.SMTPConc > 0 {
		for _, s := range order {
			if s.smtp != "" {
				add(s, 1, timed(s.name+" smtp", func(t *target) (report.Run, error) { return t.runSMTP(ctx, o.SMTPConc, o.Dur) }), false)
			}
		}
	}
	if err := res.Save(filepath.Join(o.Out, "results.json")); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(o.Out, "report.html"))
	if err != nil {
		return err
	}
	if err := res.WriteHTML(f); err != nil {
		f.Close()
		return err
	}
	f.Close()
	fmt.Println()
	res.WriteText(os.Stdout)
	fmt.Printf("\nresults: %s\nreport:  %s\n", filepath.Join(o.Out, "results.json"), filepath.Join(o.Out, "report.html"))
	return ctx.Err()
}

// PauseBetweenRuns lets the servers settle (and closed sockets drain)
// between runs.
const PauseBetweenRuns = time.Second

// RestartSettle is how long a restarted server is left alone before its
// memory baseline is read.
const RestartSettle = 3 * time.Second

// fresh restarts a server so that a memory baseline is not inflated by
// earlier runs, and reports whether it runs.
func fresh(ctx context.Context, s *server) bool {
	if err := s.restart(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "pop3bench: restart of %s: %v\n", s.name, err)
		return false
	}
	time.Sleep(RestartSettle)
	return true
}

func idleRun(ctx context.Context, s *server, n int, login bool, spec corpus.Spec) func(t *target) (report.Run, error) {
	return func(t *target) (report.Run, error) {

		o := idleOptions{Addr: s.addr, N: n, Login: login, Spec: spec, Timeout: 120 * time.Second,
			Baseline: func(r *report.Run) { r.ServerPSSBefore, _ = proc.PSS(s.pid()) }}
		return runIdle(ctx, o, func(r *report.Run) {
			time.Sleep(IdleSettle)
			r.ServerPSSAfter, _ = proc.PSS(s.pid())
		})
	}
}

// runWarm runs one session on every ordinary mailbox, 16 at a time.
func (t *target) runWarm(ctx context.Context) (report.Run, error) {
	c := min(16, t.Spec.Users)
	var tl tally
	next := make(chan int)
	done := make(chan struct{})
	for k := 0; k < c; k++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for u := range next {
				if err := t.session(ctx, t.login(corpus.User(u)), &tl); err != nil {
					tl.fail(err)
				}
			}
		}()
	}
	for u := 0; u < t.Spec.Users; u++ {
		next <- u
	}
	close(next)
	for k := 0; k < c; k++ {
		<-done
	}
	var r report.Run
	tl.fill(&r, 0)
	return r, nil
}

func setupDovecot(ctx context.Context, o compareOptions, spec corpus.Spec) (*server, error) {
	if err := ensureDovecot(ctx, o.Dovecot); err != nil {
		return nil, err
	}
	md := filepath.Join(o.Work, "maildir")
	ok, mark := stamp(md, spec)
	if !ok {
		fmt.Println("writing the corpus as Maildir:", md)
		os.RemoveAll(md)
		if err := spec.WriteMaildir(md); err != nil {
			return nil, err
		}
		if err := mark(); err != nil {
			return nil, err
		}
	}
	dir := filepath.Join(o.Work, "dovecot")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, tlsPort := DovecotPort, 0
	if o.TLS {
		tlsPort = DovecotTLSPort
	}
	do := dovecotOptions{Binary: o.Dovecot, Dir: dir, Maildir: md, Port: port, TLSPort: tlsPort,
		Scheme: o.Scheme, MaxConns: max(o.Idle, 1000), MaxProcs: max(o.IdleLoginPeer, 0) + 2*spec.Users, Spec: spec}
	if o.Pair != nil {
		do.Hash, do.AuthCacheTTL = o.Pair.DovecotHash, o.Pair.CacheTTL
	}
	return startDovecot(ctx, do)
}

// Ports of the comparison (loopback only). $POP3BENCH_PORT_OFFSET, when
// set, is added to each, so that two runs can share the machine.
var (
	Pop3dPort      = 11100
	Pop3dTLSPort   = 19950
	Pop3dSMTPPort  = 12525
	Pop3dAdminPort = 18110
	DovecotPort    = 11110
	DovecotTLSPort = 19951
)

func init() {
	v := os.Getenv("POP3BENCH_PORT_OFFSET")
	if v == "" {
		return
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 40000 {
		fmt.Fprintf(os.Stderr, "pop3bench: POP3BENCH_PORT_OFFSET=%q: want 0..40000\n", v)
		os.Exit(2)
	}
	for _, p := range []*int{&Pop3dPort, &Pop3dTLSPort, &Pop3dSMTPPort, &Pop3dAdminPort, &DovecotPort, &DovecotTLSPort} {
		*p += n
	}
}

// storeImport imports a corpus through the store API into a mail root; it
// is set by a file built only when the file store is available.
var storeImport func(ctx context.Context, root string, spec corpus.Spec) error

func buildTool(ctx context.Context, work, pkg string) (string, error) {
	out := filepath.Join(work, "bin", filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, lastLines(stderr.Bytes(), 5))
	}
	return out, nil
}

func setupPop3d(ctx context.Context, o compareOptions, spec corpus.Spec) (*server, error) {
	return setupPop3dWith(ctx, o, spec, nil)
}

// setupPop3dWith is setupPop3d with explicit pool sizes (nil: sized for
// the idle scenarios).
func setupPop3dWith(ctx context.Context, o compareOptions, spec corpus.Spec, pools *pop3dPools) (*server, error) {
	var err error
	if o.Pop3d == "" {
		if o.Pop3d, err = buildTool(ctx, o.Work, "./cmd/pop3d"); err != nil {
			return nil, err
		}
	}
	dir := filepath.Join(o.Work, "pop3d")
	root := filepath.Join(dir, "mailroot")
	ok, mark := stamp(dir, spec)
	if !ok {
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		how := o.Import
		if how == "" {
			how = "pop3ctl"
			if storeImport != nil {
				how = "store"
			}
		}
		fmt.Printf("importing the corpus into pop3d's store (%s): %s\n", how, root)
		switch how {
		case "store":
			if storeImport == nil {
				return nil, fmt.Errorf("this pop3bench was built without the file store; use -import pop3ctl")
			}
			err = storeImport(ctx, root, spec)
		case "pop3ctl":
			err = pop3ctlImport(ctx, o, dir, spec)
		default:
			err = fmt.Errorf("-import %q: want store or pop3ctl", how)
		}
		if err != nil {
			return nil, err
		}
		if err := mark(); err != nil {
			return nil, err
		}
	}
	po := pop3dOptions{Binary: o.Pop3d, Dir: dir, Port: Pop3dPort, TLSPort: Pop3dTLSPort,
		SMTPPort: Pop3dSMTPPort, Admin: Pop3dAdminPort, MaxConns: max(o.Idle, o.IdleLogin), Pools: pools, Pprof: o.Profile != ""}
	if o.Pair != nil {
		// Stored hashes of another scheme are rewritten at their first
		// login (the warm-up), so the measured sessions verify this one.
		po.Auth = o.Pair.Pop3dAuth
	}
	return startPop3d(ctx, po)
}

// pop3ctlImport builds the store with the administrator's tool: add the
// domain and mailboxes, deliver each message through stdin.
func pop3ctlImport(ctx context.Context, o compareOptions, dir string, spec corpus.Spec) error {
	var err error
	if o.Pop3ctl == "" {
		if o.Pop3ctl, err = buildTool(ctx, o.Work, "./cmd/pop3ctl"); err != nil {
			return err
		}
	}
	conf := filepath.Join(dir, "pop3d.toml")
	if err := os.WriteFile(conf, []byte("mailroot = \"mailroot\"\nnode = 1\n"), 0o644); err != nil {
		return err
	}
	run := func(stdin []byte, args ...string) error {
		cmd := exec.CommandContext(ctx, o.Pop3ctl, append([]string{"-config", conf}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("pop3ctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run(nil, "add", spec.Domain); err != nil {
		return err
	}
	for k, m := range spec.Mailboxes() {
		addr := m + "@" + spec.Domain
		if err := run([]byte(spec.Password+"\n"), "add", addr, "-password-stdin"); err != nil {
			return err
		}
		switch {
		case k < spec.Users:
			for i := 0; i < spec.PerUser; i++ {
				if err := run(spec.Message(k, i), "deliver", addr); err != nil {
					return err
				}
			}
		case k < spec.Users+spec.Big:
			for _, msg := range spec.BigMessages(k - spec.Users) {
				if err := run(msg, "deliver", addr); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// runCorpus writes the corpus as Maildir and/or imports it into a mail root.
func runCorpus(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("corpus", flag.ExitOnError)
	spec := corpusFlags(fs)
	md := fs.String("maildir", "", "write the corpus as Maildir under this folder")
	root := fs.String("store", "", "import the corpus into this mail root through the store API")
	fs.Parse(args)
	if *md == "" && *root == "" {
		return fmt.Errorf("corpus: give -maildir DIR and/or -store MAILROOT")
	}
	if *md != "" {
		if err := spec.WriteMaildir(*md); err != nil {
			return err
		}
		fmt.Printf("wrote %d mailboxes (%.1f MB of ordinary mail) under %s\n", len(spec.Mailboxes()), float64(spec.TotalBytes())/1e6, *md)
	}
	if *root != "" {
		if storeImport == nil {
			return fmt.Errorf("this pop3bench was built without the file store")
		}
		if err := storeImport(ctx, *root, *spec); err != nil {
			return err
		}
		fmt.Printf("imported %d mailboxes into %s\n", len(spec.Mailboxes()), *root)
	}
	return nil
}

// fetchProfile reads a CPU profile of d (whole seconds, at least one) from
// pop3d's admin listener; nil when it cannot.
func fetchProfile(ctx context.Context, admin string, d time.Duration) []byte {
	sec := max(1, int(d.Seconds()))
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, sec), nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pop3bench: profile: %v\n", err)
		return nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "pop3bench: profile: %s %v\n", resp.Status, err)
		return nil
	}
	return b
}
