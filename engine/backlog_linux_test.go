package engine

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest"
)

// TestListenBacklog checks with ss(8) that pop3.listen_backlog reaches the
// kernel: for a listening socket ss shows the accept queue limit as Send-Q.
func TestListenBacklog(t *testing.T) {
	ss := pop3dtest.NeedTool(t, "ss")
	ts := startServer(t, func(cfg *Config) { cfg.ListenBacklog = 7 })
	out, err := exec.Command(ss, "-ltnH", "sport = :"+ts.addr[strings.LastIndexByte(ts.addr, ':')+1:]).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 || f[2] != "7" {
		t.Fatalf("ss -ltn shows %q, want Send-Q 7", out)
	}
}
