package archtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/pop3svc/pop3svc"

// rule forbids packages under one room from depending on packages under
// others. Rooms are import paths relative to the module ("session" is
// session and everything below it); a path with a dot is outside the module.
type rule struct {
	from      []string
	forbidden []string
	except    []string // rooms under forbidden that stay allowed
	why       string
}

// rules are the rooms' import rules for the code that ships (test files
// may reach further: tests of engine and session start the built pop3d
// through cmd/pop3d/pop3dtest).
var rules = []rule{
	{from: []string{"session", "store"}, forbidden: []string{"engine", "cmd"},
		why: "sessions and the store know nothing of the network engine or the configuration"},
	{from: []string{"store"}, forbidden: []string{"session"},
		why: "the store is reached by sessions, never the other way"},
	{from: []string{"engine"}, forbidden: []string{"cmd"},
		why: "the engine takes plain options; cmd builds them from the configuration"},
	{from: []string{"session", "store"}, forbidden: []string{"github.com/panjf2000/gnet"},
		why: "only the engine drives gnet"},
	{from: []string{"engine", "session", "store", "bench"}, forbidden: []string{"cmd/internal/config"},
		why: "the configuration belongs to the binaries"},
	{from: []string{"bench"}, forbidden: []string{"cmd"}, except: []string{"cmd/pop3d/pop3dtest/machines"},
		why: "the bench drives the built binaries; of cmd it shares only the test machines"},
	{from: []string{"cmd/pop3d/pop3dtest/machines"}, forbidden: []string{"cmd", "engine", "session", "store", "bench"},
		why: "the test machines are a leaf that both the tests and the bench import"},
}

// under reports whether pkg (module-relative, or a full path outside the
// module) is room or below it.
func under(pkg, room string) bool {
	return pkg == room || strings.HasPrefix(pkg, room+"/")
}

// violations checks a dependency graph (package → every package it
// depends on, module-relative) against the rules.
func violations(deps map[string][]string, rules []rule) []string {
	var out []string
	pkgs := make([]string, 0, len(deps))
	for p := range deps {
		pkgs = append(pkgs, p)
	}
	slices.Sort(pkgs)
	for _, p := range pkgs {
		for _, r := range rules {
			if !slices.ContainsFunc(r.from, func(room string) bool { return under(p, room) }) {
				continue
			}
			for _, d := range deps[p] {
				if slices.ContainsFunc(r.forbidden, func(room string) bool { return under(d, room) }) &&
					!slices.ContainsFunc(r.except, func(room string) bool { return under(d, room) }) {
					out = append(out, fmt.Sprintf("%s depends on %s: %s", p, d, r.why))
				}
			}
		}
	}
	return out
}

// moduleDeps lists every package of the module with its dependencies
// (transitive, test files excluded) as go list reports them.
func moduleDeps(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-f", "{{.ImportPath}}{{range .Deps}} {{.}}{{end}}", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	deps := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		var ds []string
		for _, d := range f[1:] {
			ds = append(ds, strings.TrimPrefix(d, module+"/"))
		}
		deps[strings.TrimPrefix(f[0], module+"/")] = ds
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return deps
}

// TestRoomsImportOnlyWhatTheyMay: no package depends on a room its own
// room may not import.
func TestRoomsImportOnlyWhatTheyMay(t *testing.T) {
	deps := moduleDeps(t)
	for _, want := range []string{"engine", "session/pop3", "store/filestore", "cmd/internal/config"} {
		if _, ok := deps[want]; !ok {
			t.Fatalf("go list did not report %s: the graph read is incomplete", want)
		}
	}
	for _, v := range violations(deps, rules) {
		t.Error(v)
	}
}

// TestViolationsFindsForbiddenImports: the checker itself reports a
// forbidden dependency, direct or transitive, and only those.
func TestViolationsFindsForbiddenImports(t *testing.T) {
	deps := map[string][]string{
		"session/pop3":        {"store", "engine/tlsconn"},
		"store/filestore":     {"store", "store/durable", "session/auth"},
		"engine":              {"session", "store", "cmd/internal/config"},
		"cmd/pop3d":           {"engine", "session", "store", "cmd/internal/config"},
		"sessionx":            {"engine"}, // another room that only shares a prefix
		"session/smtp":        {"store", "github.com/panjf2000/gnet/v2"},
		"bench/cmd/pop3bench": {"bench/corpus", "store/filestore", "cmd/pop3d/pop3dtest/machines"},
		"bench/cmd/bad":       {"cmd/pop3d/pop3dtest"},
	}
	got := violations(deps, rules)
	want := []string{
		"bench/cmd/bad depends on cmd/pop3d/pop3dtest",
		"engine depends on cmd/internal/config",
		"engine depends on cmd/internal/config", // both the engine and the configuration rule
		"session/pop3 depends on engine/tlsconn",
		"session/smtp depends on github.com/panjf2000/gnet/v2",
		"store/filestore depends on session/auth",
	}
	if len(got) != len(want) {
		t.Fatalf("violations = %q, want %d of them", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]+":") {
			t.Errorf("violation %d = %q, want %q", i, got[i], want[i])
		}
	}
}
