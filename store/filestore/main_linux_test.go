package filestore

import (
	"os"
	"testing"
)

// TestMain runs the test binary as a helper process when a test started
// it so (helperEnv), and the tests otherwise.
func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		helperProcess(mode)
		os.Exit(1) // helperProcess exits itself
	}
	os.Exit(m.Run())
}
