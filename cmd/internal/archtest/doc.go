// Package archtest holds the test that keeps the rooms of the module
// apart: it fails when a package imports what its room may not (see
// README, "Architecture"). It has no code of its own.
package archtest
