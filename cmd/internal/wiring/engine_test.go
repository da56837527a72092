package wiring

import (
	"testing"

	"github.com/pop3svc/pop3svc/cmd/internal/config"
)

// refuse_hold 0 holds what the descriptor limit leaves after the pools and
// the reserve; a value set is taken as it is.
func TestRefuseHold(t *testing.T) {
	cfg := config.Default()
	cfg.POP3.SocketMax, cfg.POP3.SocketBacklog, cfg.SMTP.MaxConnections = 10000, 1000, 1000
	for _, c := range []struct {
		set   int
		limit uint64
		want  int
	}{
		{0, 20000, 20000 - 10000 - 1000 - 1000 - FDReserve},
		{0, 13000, 0},
		{0, 1024, 0},
		{0, 1 << 40, config.MaxSocketMax},
		{250, 20000, 250},
	} {
		cfg.POP3.RefuseHold = c.set
		if got := RefuseHold(cfg, c.limit); got != c.want {
			t.Errorf("refuse_hold %d, descriptor limit %d: holds %d, want %d", c.set, c.limit, got, c.want)
		}
	}
	if EngineConfig(config.Default()).RefuseHold != RefuseHold(config.Default(), fdLimit()) {
		t.Error("the engine does not get the computed hold")
	}
}
