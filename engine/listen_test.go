package engine

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
)

// TestBindFailureNamesTheListener: when an implicit-TLS address is taken,
// Start's error names that address and pop3.listen_tls, not the plaintext
// listener.
func TestBindFailureNamesTheListener(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	plain := "127.0.0.1:0" // free whatever else runs on this machine
	cfg := defaultConfig()
	cfg.Listen = []string{plain}
	s, err := New(Options{
		Config:    cfg,
		Factory:   newFixture().factory,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Loops:     1,
		TLSListen: []string{taken.Addr().String()},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start()
	if err == nil {
		s.Shutdown(t.Context())
		t.Fatal("Start succeeded on a taken address")
	}
	msg := err.Error()
	if !strings.Contains(msg, taken.Addr().String()+" (pop3.listen_tls)") || strings.Contains(msg, plain) {
		t.Fatalf("Start error = %q, want it to name %s (pop3.listen_tls) and not %s", msg, taken.Addr(), plain)
	}
}
