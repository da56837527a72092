package smtp

import (
	"os"
	"testing"
)

// TestMain runs the test binary as TestCrashRecovery's helper process when
// helperEnv is set, and the tests otherwise.
func TestMain(m *testing.M) {
	if root := os.Getenv(helperEnv); root != "" {
		crashHelper(root)
		return
	}
	os.Exit(m.Run())
}
