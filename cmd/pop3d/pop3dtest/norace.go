//go:build !race

package pop3dtest

const raceEnabled = false
