//go:build gcstress

package accord

import (
	"runtime"
	"runtime/debug"
	"time"
)

// With -tags gcstress every test runs under constant garbage collection (a collection every
// millisecond, and after every 1 % of heap growth), so that a handle freed by its finalizer
// while C still uses it, or a Go pointer kept by C, shows up as a crash or a race.
func init() {
	debug.SetGCPercent(1)
	go func() {
		for {
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
	}()
}
