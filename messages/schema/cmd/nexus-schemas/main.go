// Command nexus-schemas writes the contract's JSON Schemas (messages/schema)
// from the messages types: go generate in messages/schema, or make schemas.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nexus-broker/nexus/messages/schema/internal/gen"
)

func main() {
	dir := flag.String("dir", ".", "where the schemas go (messages/schema)")
	src := flag.String("messages", "..", "the messages package's source, for the descriptions")
	flag.Parse()
	if err := write(*dir, *src); err != nil {
		fmt.Fprintln(os.Stderr, "nexus-schemas:", err)
		os.Exit(1)
	}
}

// write replaces every .json file in dir with the generated ones, so a
// schema whose type left the contract goes too.
func write(dir, src string) error {
	files, err := gen.Files(src)
	if err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if _, ok := files[filepath.Base(f)]; !ok {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
