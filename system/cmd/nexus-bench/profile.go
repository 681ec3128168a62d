package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"

	"github.com/google/pprof/profile"
)

// profiles collects a CPU profile of each throughput phase, round by round,
// and writes one file per phase (dir/<phase>.prof), so that one path can be
// compared with its floor over the same kind of work:
//
//	go tool pprof -top -diff_base dir/same-size.prof dir/tokens.prof
//
// The zero value (no dir) profiles nothing.
type profiles struct {
	dir    string
	byName map[string][]*profile.Profile
	buf    bytes.Buffer
}

// start begins profiling a phase; stop ends it and keeps its profile.
func (p *profiles) start() error {
	if p.dir == "" {
		return nil
	}
	p.buf.Reset()
	return pprof.StartCPUProfile(&p.buf)
}

func (p *profiles) stop(name string) error {
	if p.dir == "" {
		return nil
	}
	pprof.StopCPUProfile()
	prof, err := profile.Parse(&p.buf)
	if err != nil {
		return fmt.Errorf("profile of %s: %w", name, err)
	}
	if p.byName == nil {
		p.byName = map[string][]*profile.Profile{}
	}
	p.byName[name] = append(p.byName[name], prof)
	return nil
}

// write merges each phase's rounds into dir/<phase>.prof, and writes the
// heap profile of the whole run, every phase's allocations mixed, to
// dir/allocs.prof (-sample_index=alloc_space; focus on a function to see
// one path's).
func (p *profiles) write() error {
	if p.dir == "" {
		return nil
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(p.dir, "allocs.prof"))
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for name, rounds := range p.byName {
		merged, err := profile.Merge(rounds)
		if err != nil {
			return fmt.Errorf("merge the profiles of %s: %w", name, err)
		}
		f, err := os.Create(filepath.Join(p.dir, name+".prof"))
		if err != nil {
			return err
		}
		if err := merged.Write(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
