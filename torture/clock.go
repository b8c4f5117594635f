package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Clock jumps. accord's safety clock reads only CLOCK_BOOTTIME and CLOCK_MONOTONIC, which
// never jump; the wall clock (CLOCK_REALTIME) does, when NTP steps it or an operator sets
// it. To show that such jumps change nothing, the harness re-executes itself, and every
// server it starts runs, under libfaketime with the wall clock alone faked
// (FAKETIME_DONT_FAKE_MONOTONIC=1): the nemesis's "clock" fault writes an offset of hours
// into the file libfaketime reads (the libaccord in this process and every server see it
// within a second), and takes it back later.

// clockEnv marks the re-executed process.
const clockEnv = "ACCORD_TORTURE_FAKETIME"

// fakeTimeLibrary finds libfaketime (Debian's faketime package), or "".
func fakeTimeLibrary() string {
	matches, _ := filepath.Glob("/usr/lib/*/faketime/libfaketime.so.1")
	if len(matches) == 0 {
		return ""
	}
	return matches[0]
}

// reexecUnderFakeTime replaces this process with itself under libfaketime reading `file`
// (returns only on failure). Children inherit the environment, so the servers run under it
// too.
func reexecUnderFakeTime(file string) error {
	library := fakeTimeLibrary()
	if library == "" {
		return fmt.Errorf("the clock fault needs libfaketime: apt-get install faketime (or leave out --faults clock)")
	}
	if err := os.WriteFile(file, []byte("+0\n"), 0o600); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	env := append(os.Environ(),
		clockEnv+"="+file,
		"LD_PRELOAD="+library,
		"FAKETIME_TIMESTAMP_FILE="+file,
		"FAKETIME_DONT_FAKE_MONOTONIC=1",
		"FAKETIME_CACHE_DURATION=1",
	)
	return syscall.Exec(self, os.Args, env)
}

// setClockOffset moves every faked wall clock by `hours` from the real one (0: back).
func setClockOffset(file string, hours int) error {
	return os.WriteFile(file, []byte(fmt.Sprintf("%+dh\n", hours)), 0o600)
}
