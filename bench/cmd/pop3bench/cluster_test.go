//go:build cluster

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pop3svc/pop3svc/cmd/pop3d/pop3dtest/machines"
)

// TestClusterSmoke runs pop3bench cluster in small on the GlusterFS
// volume that make test-cluster started (POP3SVC_GLUSTER_VOLUME): three
// machines, two kill -9, three SIGSTOP trials; runCluster fails when a
// bar does (a message lost or duplicated, a deletion after a lost lock,
// users of a killed machine kept out longer than the lease plus 5 s).
func TestClusterSmoke(t *testing.T) {
	machines.Need(t)
	vol := os.Getenv("POP3SVC_GLUSTER_VOLUME")
	if vol == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("POP3SVC_GLUSTER_VOLUME is not set (make test-cluster sets it)")
		}
		t.Skip("POP3SVC_GLUSTER_VOLUME is not set (make test-cluster sets it)")
	}
	work := t.TempDir()
	pop3d := filepath.Join(work, "pop3d")
	if out, err := exec.Command("go", "build", "-o", pop3d, "github.com/pop3svc/pop3svc/cmd/pop3d").CombinedOutput(); err != nil {
		t.Fatalf("go build pop3d: %v\n%s", err, out)
	}
	err := runCluster(context.Background(), []string{
		"-stores", "gluster", "-gluster-volume", vol, "-pop3d", pop3d, "-work", work,
		"-users", "4", "-senders", "2", "-messages", "40", "-kills", "2", "-trials", "3",
		"-kill-min", "500ms", "-kill-max", "1s",
	})
	if err != nil {
		t.Fatal(err)
	}
}
