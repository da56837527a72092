// Package version is the version both binaries print with -version.
//
// `make deb` (and any build that wants it) stamps the version with
//
//	go build -ldflags "-X github.com/pop3svc/pop3svc/cmd/internal/version.Version=1.2.3"
//
// Without a stamp it comes from the build information the go command
// records: the module version, else the VCS revision (with "+dirty" for a
// modified tree), else "devel".
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set with -ldflags -X; empty: taken from the build information.
var Version string

// String is the version.
func String() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return "devel"
	}
	return "devel-" + rev + dirty
}

// Line is what -version prints: program, version, Go release, platform.
func Line(program string) string {
	return fmt.Sprintf("%s %s (%s %s/%s)", program, String(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
