package main

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// The nemesis injects one fault at a time, holds it for a while, then repairs it:
//
//	kill        SIGKILL a member, restart it later on its data directory
//	pause       SIGSTOP a member for longer than the session TTL, then SIGCONT
//	isolate     cut every link to and from one member (symmetric partition)
//	one-way     cut every link from one member (it hears the others; they do not hear it)
//	bridge      split the others in two halves that cannot talk; one member talks to both
//	majority    cut between a random minority and the majority, both ways
//	slow-disk   delay a member's durable writes by 50-400 ms (through its failpoint)
//	fail-disk   make a member's next durable write fail (it stops itself), restart it later
//	clock       jump the wall clock of every client and server by ±1-6 hours (see clock.go)
//
// Partitions go through a proxy on every directed peer link (see proxy.go).
var faultKinds = []string{"kill", "pause", "isolate", "one-way", "bridge", "majority", "slow-disk", "fail-disk", "clock"}

type nemesis struct {
	c      *cluster
	rng    *rand.Rand
	ttl    time.Duration
	kinds  []string
	mu     sync.Mutex
	counts map[string]int
	log    func(string)
	// clockFile: the file libfaketime reads ("" when the clock fault is off).
	clockFile string
}

func (n *nemesis) count(kind string) {
	n.mu.Lock()
	n.counts[kind]++
	n.mu.Unlock()
}

func (n *nemesis) total(kinds ...string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := 0
	for k, v := range n.counts {
		if len(kinds) == 0 {
			t += v
			continue
		}
		for _, want := range kinds {
			if k == want {
				t += v
			}
		}
	}
	return t
}

func (n *nemesis) summary() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var parts []string
	for k, v := range n.counts {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func (n *nemesis) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(n.rng.Int63n(int64(hi-lo)+1))
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// run injects faults until ctx ends, then leaves the cluster healed.
func (n *nemesis) run(ctx context.Context) error {
	members := n.c.members
	for ctx.Err() == nil {
		sleepCtx(ctx, n.between(500*time.Millisecond, 2*time.Second))
		if ctx.Err() != nil {
			break
		}
		kind := n.kinds[n.rng.Intn(len(n.kinds))]
		victim := members[n.rng.Intn(len(members))]
		hold := n.between(time.Second, 4*time.Second)
		var undo func() error
		switch kind {
		case "kill":
			n.c.kill(victim)
			undo = func() error { return n.c.start(victim) }
		case "pause":
			n.c.pause(victim)
			hold = n.ttl + n.between(500*time.Millisecond, 2*time.Second)
			undo = func() error { n.c.resume(victim); return nil }
		case "isolate":
			for _, other := range members {
				if other != victim {
					n.c.cut(victim.id, other.id, true)
					n.c.cut(other.id, victim.id, true)
				}
			}
		case "one-way":
			for _, other := range members {
				if other != victim {
					n.c.cut(victim.id, other.id, true)
				}
			}
		case "bridge":
			// The others in two halves that cannot talk to each other; the victim talks to all.
			var others []*member
			for _, m := range members {
				if m != victim {
					others = append(others, m)
				}
			}
			n.rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
			half := len(others) / 2
			for _, a := range others[:half] {
				for _, b := range others[half:] {
					n.c.cut(a.id, b.id, true)
					n.c.cut(b.id, a.id, true)
				}
			}
		case "majority":
			shuffled := append([]*member(nil), members...)
			n.rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			minority := (len(members) - 1) / 2
			for _, a := range shuffled[:minority] {
				for _, b := range shuffled[minority:] {
					n.c.cut(a.id, b.id, true)
					n.c.cut(b.id, a.id, true)
				}
			}
		case "slow-disk":
			if err := n.c.setDiskDelay(victim, 50+n.rng.Intn(351)); err != nil {
				return err
			}
			undo = func() error { return n.c.setDiskDelay(victim, 0) }
		case "clock":
			hours := 1 + n.rng.Intn(6)
			if n.rng.Intn(2) == 0 {
				hours = -hours
			}
			if err := setClockOffset(n.clockFile, hours); err != nil {
				return err
			}
			n.log(fmt.Sprintf("wall clocks moved by %+d h", hours))
			undo = func() error { return setClockOffset(n.clockFile, 0) }
		case "fail-disk":
			if err := n.c.failDisk(victim); err != nil {
				return err
			}
			undo = func() error {
				if victim.waitExit(2 * time.Second) {
					return n.c.start(victim)
				}
				// It wrote nothing meanwhile (a follower with nothing to append): disarm.
				return os.Remove(victim.dataDir + "/failpoint-fsync-fail")
			}
		}
		n.count(kind)
		n.log(fmt.Sprintf("fault %s on member %d for %v", kind, victim.id, hold.Round(time.Millisecond)))
		sleepCtx(ctx, hold)
		if undo != nil {
			if err := undo(); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
		for _, p := range n.c.proxies {
			p.setCut(false)
		}
	}
	return n.c.heal()
}
