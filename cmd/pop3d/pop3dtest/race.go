//go:build race

package pop3dtest

// raceEnabled: the test binary runs with the race detector, so the
// binaries are built with it too.
const raceEnabled = true
