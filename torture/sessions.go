package main

import (
	"context"
	"time"

	accord "github.com/accord-engine/accord/bindings/go"
)

// sessionKeeper holds a worker's current session, and opens a new one once the last was
// lost (a holder paused past its TTL, a partition): workers keep working through faults.
type sessionKeeper struct {
	c   *accord.Client
	ttl time.Duration
	s   *accord.Session
}

// get returns the session, opening one if needed; nil after a failed attempt (counted, and
// paced, so the caller can simply try again).
func (k *sessionKeeper) get(ctx context.Context, counts *counters) *accord.Session {
	if k.s == nil {
		s, err := k.c.NewSession(ctx, accord.WithTTL(k.ttl))
		if err != nil {
			counts.failed()
			time.Sleep(100 * time.Millisecond)
			return nil
		}
		k.s = s
	}
	return k.s
}

// forgetIfLost closes and drops the session once it is lost.
func (k *sessionKeeper) forgetIfLost() {
	if k.s == nil {
		return
	}
	if state, _ := k.s.State(); state == accord.SessionLost {
		k.s.Close()
		k.s = nil
	}
}

func (k *sessionKeeper) close() {
	if k.s != nil {
		k.s.Close()
		k.s = nil
	}
}
