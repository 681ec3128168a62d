package system_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfileModules: the image's module-download layer copies the go.mod
// and go.sum of every module go.work uses, so a new module cannot be left out
// of it (the build would still work, downloading again on every change).
func TestDockerfileModules(t *testing.T) {
	work, err := os.ReadFile("../go.work")
	if err != nil {
		t.Fatal(err)
	}
	docker, err := os.ReadFile("../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	use := regexp.MustCompile(`(?m)^\s*\./(\S+)\s*$`).FindAllStringSubmatch(string(work), -1)
	if len(use) == 0 {
		t.Fatal("no modules found in go.work")
	}
	download := strings.Index(string(docker), "RUN go mod download")
	sources := strings.Index(string(docker), "COPY . .")
	if download < 0 || sources < download {
		t.Fatal("deploy/Dockerfile has no go mod download before it copies the sources")
	}
	for _, m := range use {
		dir := m[1]
		if i := strings.Index(string(docker), "COPY "+dir+"/go.* "+dir+"/\n"); i < 0 || i > download {
			t.Errorf("deploy/Dockerfile does not copy %s/go.mod and go.sum before go mod download", dir)
		}
	}
}
