// Command pop3bench is the load generator of the bench harness: it runs
// POP3 scenarios (full sessions, idle connections, large RETR of a
// dot-stuffed text message and of a base64 attachment message, SMTP
// delivery, with TLS variants) against a server, writes JSON results and
// renders an HTML report, and runs the side-by-side comparison of pop3d
// against Dovecot (the compare subcommand).
//
//	pop3bench sessions -addr 127.0.0.1:1100 -c 1,16,64 -d 10s -json out.json
//	pop3bench retr     -addr 127.0.0.1:1100 -c 1 -d 10s
//	pop3bench retr-att -addr 127.0.0.1:1100 -c 1 -d 10s
//	pop3bench idle     -addr 127.0.0.1:1100 -n 19000 [-login]
//	pop3bench smtp     -smtp 127.0.0.1:2525 -c 8 -d 10s
//	pop3bench corpus   -maildir DIR | -store MAILROOT
//	pop3bench report   -json out.json -html out.html
//	pop3bench compare  [-quick] [-pop3d PATH] [-out DIR]
//	pop3bench attack   [-quick] [-pop3d PATH] [-servers pop3d,dovecot]
//	pop3bench cluster  [-quick] [-stores gluster,local] [-messages N] [-kills N] [-trials N] [-lease D]
//
// -pid names the server's process: its whole tree's CPU time and PSS are
// measured before and after each run.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pop3svc/pop3svc/bench/corpus"
	"github.com/pop3svc/pop3svc/bench/proc"
	"github.com/pop3svc/pop3svc/bench/report"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "sessions", ScenarioRetr, ScenarioRetrAtt, "idle", "smtp":
		err = runScenario(ctx, os.Args[1], os.Args[2:])
	case "corpus":
		err = runCorpus(ctx, os.Args[2:])
	case "report":
		err = runReport(os.Args[2:])
	case "compare":
		err = runCompare(ctx, os.Args[2:])
	case "idle-worker":
		err = idleWorker(os.Args[2:])
	case "attack":
		err = runAttack(ctx, os.Args[2:])
	case "cluster":
		err = runCluster(ctx, os.Args[2:])
	case "attack-worker":
		err = attackWorker(os.Args[2:])
	case "-h", "-help", "--help", "help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "pop3bench: unknown scenario %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pop3bench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: pop3bench SCENARIO [flags]
scenarios: sessions retr retr-att idle smtp   (against a running server)
           corpus                    (write the corpus as Maildir or into a mail root)
           report                    (render JSON results as HTML)
           compare                   (pop3d against Dovecot, side by side)
           attack                    (slow clients, a password flood and normal clients at once, pop3d and Dovecot)
           cluster                   (3 test machines over GlusterFS and local disk: kill -9, SIGSTOP, nothing lost)
Run "pop3bench SCENARIO -h" for its flags.`)
}

// corpusFlags registers the corpus's flags on fs.
func corpusFlags(fs *flag.FlagSet) *corpus.Spec {
	s := corpus.Default()
	fs.Uint64Var(&s.Seed, "seed", s.Seed, "corpus seed")
	fs.StringVar(&s.Domain, "domain", s.Domain, "mail domain")
	fs.IntVar(&s.Users, "users", s.Users, "mailboxes with messages (at least the highest concurrency)")
	fs.IntVar(&s.PerUser, "per-user", s.PerUser, "messages per mailbox")
	fs.IntVar(&s.Big, "big", s.Big, "mailboxes with the two 10 MiB messages (text, attachment)")
	fs.IntVar(&s.Idle, "idle-users", s.Idle, "empty mailboxes for logged-in idle sessions")
	fs.StringVar(&s.Password, "password", s.Password, "every mailbox's password")
	return &s
}

// parseInts reads "1,16,64".
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad count %q in %q", f, s)
		}
		out = append(out, n)
	}
	return out, nil
}

// measured runs fn and adds the server's tree CPU and PSS (when pid > 0)
// and the harness's own CPU to its result.
func measured(pid int, fn func() (report.Run, error)) (report.Run, error) {
	var cpu0 time.Duration
	var pss0 int64
	var err error
	if pid > 0 {
		if cpu0, err = proc.CPU(pid); err != nil {
			return report.Run{}, fmt.Errorf("server process: %w", err)
		}
		pss0, _ = proc.PSS(pid)
	}
	self0 := proc.Self()
	r, err := fn()
	r.ClientCPUSec += (proc.Self() - self0).Seconds()
	r.LoadAvg, _ = proc.LoadAvg()
	if pid > 0 {
		cpu1, cerr := proc.CPU(pid)
		if cerr != nil {
			return r, fmt.Errorf("server process after the run: %w", cerr)
		}
		r.ServerCPUSec = (cpu1 - cpu0).Seconds()
		ops := r.Sessions
		if isRetr(r.Scenario) || r.Scenario == "smtp" {
			ops = r.Messages
		}
		if ops > 0 {
			r.ServerCPUPerOpMs = r.ServerCPUSec * 1000 / float64(ops)
		}
		if r.ServerPSSBefore == 0 {
			r.ServerPSSBefore = pss0
		}
		if r.ServerPSSAfter == 0 {
			r.ServerPSSAfter, _ = proc.PSS(pid)
		}
	}
	return r, err
}

func runScenario(ctx context.Context, name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	spec := corpusFlags(fs)
	addr := fs.String("addr", "127.0.0.1:1100", "POP3 (or with -tls, POP3S) address")
	smtpAddr := fs.String("smtp", "127.0.0.1:2525", "SMTP address (smtp scenario)")
	useTLS := fs.Bool("tls", false, "implicit TLS (POP3S); certificates are not verified")
	concs := fs.String("c", "", "concurrency levels, comma-separated (sessions: 1,16,64; retr, retr-att: 1; smtp: 8)")
	dur := fs.Duration("d", 10*time.Second, "duration of each run")
	n := fs.Int("n", 19000, "idle: connections to hold")
	login := fs.Bool("login", false, "idle: log each connection in to its own idle mailbox")
	workers := fs.Int("workers", 0, "idle: client processes (0: two per CPU, more when needed for at most 15,000 connections each)")
	dele := fs.Bool("dele", false, "sessions: DELE every message before QUIT (empties the mailboxes)")
	pid := fs.Int("pid", 0, "server's process id: measure its tree's CPU and PSS")
	label := fs.String("label", "server", "server name in the results")
	jsonOut := fs.String("json", "", "write JSON results to this file (\"-\": stdout)")
	timeout := fs.Duration("timeout", 30*time.Second, "I/O timeout")
	fs.Parse(args)
	if *dur <= 0 || *timeout <= 0 {
		return fmt.Errorf("-d and -timeout must be positive")
	}
	if *concs == "" {
		*concs = map[string]string{"sessions": "1,16,64", ScenarioRetr: "1", ScenarioRetrAtt: "1", "smtp": "8", "idle": "1"}[name]
	}
	cs, err := parseInts(*concs)
	if err != nil {
		return err
	}
	t := &target{Addr: *addr, SMTP: *smtpAddr, Spec: *spec, Timeout: *timeout, Dele: *dele}
	if *useTLS {
		t.TLS = benchTLS()
	}
	res := &report.Results{Started: time.Now(), Command: strings.Join(os.Args, " "), Host: hostname()}
	if name == "idle" {
		cs = cs[:1]
		if *login && spec.Idle < *n {
			spec.Idle = *n // the idle mailboxes are idle00001..; the server must have them
			t.Spec = *spec
		}
	}
	for _, c := range cs {
		if ctx.Err() != nil {
			break
		}
		r, err := measured(*pid, func() (report.Run, error) {
			bar := startProgress(fmt.Sprintf("%s c=%d", name, c), *dur)
			t.Progress = bar
			defer bar.end()
			switch name {
			case "sessions":
				return t.runSessions(ctx, c, *dur)
			case ScenarioRetr:
				return t.runRetr(ctx, c, *dur, corpus.BigTextMsg)
			case ScenarioRetrAtt:
				return t.runRetr(ctx, c, *dur, corpus.BigAttachmentMsg)
			case "smtp":
				return t.runSMTP(ctx, c, *dur)
			}
			o := idleOptions{Addr: *addr, N: *n, Login: *login, Workers: *workers, Spec: *spec, Timeout: *timeout}
			if *pid > 0 {
				o.Baseline = func(r *report.Run) { r.ServerPSSBefore, _ = proc.PSS(*pid) }
			}
			return runIdle(ctx, o, func(r *report.Run) {
				if *pid > 0 {
					time.Sleep(IdleSettle)
					r.ServerPSSAfter, _ = proc.PSS(*pid)
				}
			})
		})
		if err != nil {
			return err
		}
		r.Server, r.Round = *label, 1
		if r.Scenario == "idle-prelogin" || r.Scenario == "idle-login" {
			if r.Conns > 0 && r.ServerPSSAfter > 0 {
				r.PSSPerConn = float64(r.ServerPSSAfter-r.ServerPSSBefore) / float64(r.Conns)
			}
		}
		res.Runs = append(res.Runs, r)
		printRun(r)
	}
	if *jsonOut != "" {
		if *jsonOut == "-" {
			return writeJSON(os.Stdout, res)
		}
		return res.Save(*jsonOut)
	}
	return nil
}

// IdleSettle is how long the idle scenario waits after the last connection
// before it reads the server's memory.
const IdleSettle = time.Second

func benchTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(256)}
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func printRun(r report.Run) {
	switch r.Scenario {
	case "idle-prelogin", "idle-login":
		fmt.Printf("%-8s %-14s conns=%-6d open=%.3fs pss/conn=%.0fB errors=%d %s\n",
			r.Server, r.Scenario, r.Conns, r.OpenSeconds, r.PSSPerConn, r.Errors, r.FirstError)
	case "loopback":
		fmt.Printf("%-8s %-14s %.1fs %.1f MB/s (%d KiB writes, %d KiB reads) clientcpu=%.1fs load=%.1f\n",
			r.Server, r.Scenario, r.Seconds, r.MBPerSec, LoopbackWriteSize>>10, LoopbackReadSize>>10, r.ClientCPUSec, r.LoadAvg)
	case report.LoopbackFile:
		fmt.Printf("%-8s %-14s %.1fs %.1f MB/s (sendfile of a 10 MiB file, %d KiB reads) clientcpu=%.1fs load=%.1f errors=%d %s\n",
			r.Server, r.Scenario, r.Seconds, r.MBPerSec, LoopbackReadSize>>10, r.ClientCPUSec, r.LoadAvg, r.Errors, r.FirstError)
	case ScenarioRetr, ScenarioRetrTLS, ScenarioRetrAtt, ScenarioRetrAttTLS, "smtp":
		fmt.Printf("%-8s %-14s c=%-3d %.1fs msgs=%d %.1f MB/s %.1f msg/s p99=%.1fms srvcpu/op=%.2fms clientcpu=%.1fs load=%.1f errors=%d %s\n",
			r.Server, r.Scenario, r.Concurrency, r.Seconds, r.Messages, r.MBPerSec, r.MessagesPerSec, r.P99Ms, r.ServerCPUPerOpMs, r.ClientCPUSec, r.LoadAvg, r.Errors, r.FirstError)
	default:
		fmt.Printf("%-8s %-14s c=%-3d %.1fs sessions=%d %.1f/s p50=%.1fms p99=%.1fms %.1f MB/s srvcpu/session=%.2fms clientcpu=%.1fs load=%.1f errors=%d %s\n",
			r.Server, r.Scenario, r.Concurrency, r.Seconds, r.Sessions, r.SessionsPerSec, r.P50Ms, r.P99Ms, r.MBPerSec, r.ServerCPUPerOpMs, r.ClientCPUSec, r.LoadAvg, r.Errors, r.FirstError)
	}
}

func runReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	in := fs.String("json", "", "JSON results")
	out := fs.String("html", "", "HTML report to write (empty: print the table)")
	fs.Parse(args)
	if *in == "" {
		return fmt.Errorf("report: -json is required")
	}
	r, err := report.Load(*in)
	if err != nil {
		return err
	}
	if *out == "" {
		r.WriteText(os.Stdout)
		return nil
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := r.WriteHTML(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func numCPU() int { return runtime.NumCPU() }
