package engine

import (
	"fmt"
	"os"
	"testing"
)

// TestMain runs the test binary as a helper process when a benchmark
// started it so (perfClientEnv), and the tests otherwise.
func TestMain(m *testing.M) {
	if spec := os.Getenv(perfClientEnv); spec != "" {
		if err := perfClients(spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
