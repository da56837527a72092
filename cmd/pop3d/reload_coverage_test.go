package main

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
	"github.com/pop3svc/pop3svc/store"
)

// liveCaseTests are the tests that run lists of live cases on a running
// pop3d, with the function listing each one's cases (called here only to
// read the keys; their probes do not run).
var liveCaseTests = map[string]func() []liveCase{
	"TestReloadAppliesLiveKeys":       liveCases,
	"TestReloadAppliesLiveKeysIPv6":   ipv6Cases,
	"TestReloadAppliesOutboundMarks":  outboundCases,
	"TestReloadAppliesDirectoryKeys":  func() []liveCase { return directoryCases(&slapdEnv{}) },
	"TestReloadAppliesDeliveryKeys":   func() []liveCase { return deliveryCases(&deliveryEnv{}) },
	"TestReloadAppliesSubmissionKeys": submissionReloadCases,
	"TestReloadAppliesOutboundKeys": func() []liveCase {
		return outboundReloadCases(&outboundEnv{remote: &pop3dtest.Server{}, b: &receiver{}})
	},
	"TestReloadAppliesPolicyKeys":    policyCases,
	"TestReloadAppliesAuthQueueKeys": queueCases,
}

// liveKeyTests names, for each live key a test of its own changes on a
// running pop3d (because it needs files or a client the cases cannot
// share), that test.
var liveKeyTests = map[string]string{
	"tls.cert":          "TestReloadAppliesCertificate",
	"tls.key":           "TestReloadAppliesCertificate",
	"auth.pam_service":  "TestReloadAppliesPAMService",
	"auth.allow_ntlmv1": "TestReloadAppliesNTLMv1",
	// Two addresses in one /48 and two /64s: a network namespace.
	"limits.prelogin_per_net48": "TestReloadAppliesPreloginPerNet48",
	// A minute at least before the first sweep: a test of its own, in parallel.
	"pop3.expire_sweep": "TestReloadAppliesExpireSweep",
	// A token per key, signed with keys in files and at a URL.
	"oauth.issuer":    "TestReloadAppliesOAuthKeys",
	"oauth.audience":  "TestReloadAppliesOAuthKeys",
	"oauth.jwks_file": "TestReloadAppliesOAuthKeys",
	"oauth.jwks_url":  "TestReloadAppliesOAuthKeys",
	"oauth.claim":     "TestReloadAppliesOAuthKeys",
	// An introspection endpoint the test runs, holding requests.
	"oauth.introspection_url":           "TestReloadAppliesIntrospectionKeys",
	"oauth.client_id":                   "TestReloadAppliesIntrospectionKeys",
	"oauth.client_secret":               "TestReloadAppliesIntrospectionKeys",
	"oauth.max_introspections":          "TestReloadAppliesIntrospectionKeys",
	"oauth.introspection_cache":         "TestReloadAppliesIntrospectionKeys",
	"oauth.introspection_cache_entries": "TestReloadAppliesIntrospectionKeys",
}

// TestEveryKeyHasReloadTest walks the live/restart table: every live key
// must have an end-to-end test that changes it on a running pop3d and
// observes the effect, and every restart key a case of
// TestReloadReportsRestartKeys. A key added to the configuration without
// one fails here; so does a test named here that does not exist.
func TestEveryKeyHasReloadTest(t *testing.T) {
	funcs := testFuncs(t)
	live := map[string][]string{} // key -> the tests that change it live
	for name, cases := range liveCaseTests {
		if !funcs[name] {
			t.Errorf("liveCaseTests names %s, which is no test of this package", name)
		}
		for _, lc := range cases() {
			live[lc.key] = append(live[lc.key], name+"/"+lc.key)
		}
	}
	for key, name := range liveKeyTests {
		if !funcs[name] {
			t.Errorf("liveKeyTests names %s for %s, which is no test of this package", name, key)
		}
		live[key] = append(live[key], name)
	}
	restart := map[string]bool{}
	for _, rc := range restartCases {
		restart[rc[0]] = true
	}

	keys := config.Keys()
	for _, k := range keys {
		w, ok := config.Applies(k)
		if !ok {
			t.Fatalf("config.Keys lists %s, which config.Applies does not know", k)
		}
		switch w {
		case config.Live:
			if len(live[k]) == 0 {
				t.Errorf("live key %s has no end-to-end reload test: add a case to liveCases (or a test named in liveKeyTests) that changes it on a running pop3d and observes the effect on a new connection", k)
			}
			if restart[k] {
				t.Errorf("live key %s is among the restart cases", k)
			}
		case config.Restart:
			if !restart[k] {
				t.Errorf("restart key %s has no case in restartCases: TestReloadReportsRestartKeys must check that its change is reported", k)
			}
			if len(live[k]) > 0 {
				t.Errorf("restart key %s is changed as a live key by %v", k, live[k])
			}
		}
	}
	for k := range live {
		if !slices.Contains(keys, k) {
			t.Errorf("a reload test changes %s, which is no configuration key", k)
		}
	}
	for k := range restart {
		if !slices.Contains(keys, k) {
			t.Errorf("restartCases has %s, which is no configuration key", k)
		}
	}
}

// testFuncs are the names of the Test functions in this folder's test
// files, whatever their build tags.
func testFuncs(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Test") {
				out[fd.Name.Name] = true
			}
		}
	}
	return out
}

// reloadConfig is integrationConfig with an hour's login timeout, so
// that no session a reload test drives ends on its own on a loaded
// machine.
func reloadConfig(t testing.TB, top string, setup func(ctx context.Context, st store.Store)) pop3dtest.Config {
	c := integrationConfig(t, top, "", setup)
	c.POP3 = `login_timeout = "1h"`
	return c
}
