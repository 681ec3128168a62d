// Package buildinfo says which build a binary is, for every binary's
// -version flag: the version set at link time, else the main module's, and
// the Go build information the toolchain recorded (runtime/debug).
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set at link time, as a release build does:
//
//	go build -ldflags "-X github.com/nexus-broker/nexus/shared/run/buildinfo.version=v1.2.0" ./services/vault/cmd/vault
var version string

// Version is the version set at link time, else the main module's version
// ("(devel)" for a build from a source tree), else "unknown".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

// Text is what -version prints: the binary's name and version, the Go
// version and platform, then the build information in the layout of
// `go version -m` (path, main module, build settings such as vcs.revision).
func Text(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s (%s %s/%s)\n", name, Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		b.WriteString("\tno build information (not built with module support)\n")
		return b.String()
	}
	fmt.Fprintf(&b, "\tpath\t%s\n", bi.Path)
	if bi.Main.Path != "" {
		fmt.Fprintf(&b, "\tmod\t%s\t%s\n", bi.Main.Path, bi.Main.Version)
	}
	for _, s := range bi.Settings {
		fmt.Fprintf(&b, "\tbuild\t%s=%s\n", s.Key, s.Value)
	}
	return b.String()
}
