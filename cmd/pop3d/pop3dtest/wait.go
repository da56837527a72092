package pop3dtest

import (
	"testing"
	"time"
)

// PollPause is the pause between two looks at a state WaitFor waits for.
const PollPause = 10 * time.Millisecond

// WaitFor waits until cond holds, looking every PollPause, and fails the
// test naming what it waited for when timeout passes first. Tests wait
// for a state with it instead of sleeping.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Eventually(timeout, cond) {
		t.Fatalf("%s: not within %v", what, timeout)
	}
}

// Eventually reports whether cond held within timeout, looking every
// PollPause: for a caller that has more to do than fail when it did not.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(PollPause)
	}
	return true
}
