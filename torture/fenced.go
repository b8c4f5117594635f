package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The mutex workload: holders of mutex "fence" increment a counter with writes fenced by
// their token (read n, write "n+1 token" only if the token still holds the mutex). Safety:
// no two acknowledged writes carry the same n (an increment lost to a second holder), and
// in the order of n the tokens never go down (a stale holder's write accepted late).
const (
	fenceLock = "fence"
	fenceKey  = "fenced/counter"
)

// fencedWrite is one write a holder made: the n it wrote, with its token; acknowledged or
// of unknown outcome.
type fencedWrite struct {
	n, token uint64
	acked    bool
}

type fencedLog struct {
	mu     sync.Mutex
	writes []fencedWrite
	cycles int64
}

func (l *fencedLog) add(w fencedWrite) {
	l.mu.Lock()
	l.writes = append(l.writes, w)
	l.mu.Unlock()
}

func runFencedHolder(ctx context.Context, endpoints []string, ttl time.Duration, log *fencedLog, counts *counters) {
	c, err := connect(endpoints)
	if err != nil {
		counts.note("fenced holder: " + err.Error())
		return
	}
	defer c.Close()
	kv := c.KV()
	sessions := &sessionKeeper{c: c, ttl: ttl}
	defer sessions.close()
	for ctx.Err() == nil {
		session := sessions.get(ctx, counts)
		if session == nil {
			continue
		}
		m := session.Mutex(fenceLock)
		lockCtx, cancel := context.WithTimeout(ctx, 2*opTimeout)
		token, err := m.Lock(lockCtx)
		cancel()
		if err != nil {
			counts.failed()
			sessions.forgetIfLost()
			continue
		}
		callCtx, cancel := context.WithTimeout(context.Background(), opTimeout)
		value, found, _, err := kv.Get(callCtx, []byte(fenceKey))
		cancel()
		if err == nil {
			n := uint64(0)
			if found {
				n, err = parseFenced(value)
			}
			if err == nil {
				next := fencedWrite{n: n + 1, token: token}
				callCtx, cancel := context.WithTimeout(context.Background(), opTimeout)
				ok, werr := kv.FencedPut(callCtx, []byte(fenceLock), token, []byte(fenceKey),
					[]byte(fmt.Sprintf("%d %d", next.n, token)))
				cancel()
				switch {
				case werr != nil:
					log.add(next) // unknown outcome
					counts.failed()
				case ok:
					next.acked = true
					log.add(next)
					counts.ok()
				default:
					counts.ok() // refused: the token no longer held the mutex
				}
			}
		}
		if err != nil {
			counts.failed()
		}
		callCtx, cancel = context.WithTimeout(context.Background(), opTimeout)
		if err := m.Unlock(callCtx); err != nil {
			counts.failed()
		}
		cancel()
		log.mu.Lock()
		log.cycles++
		log.mu.Unlock()
	}
}

func parseFenced(value []byte) (uint64, error) {
	fields := strings.Fields(string(value))
	if len(fields) != 2 {
		return 0, fmt.Errorf("bad counter value %q", value)
	}
	return strconv.ParseUint(fields[0], 10, 64)
}

// checkFenced returns the violations in the log, given the counter's final value.
func checkFenced(log *fencedLog, final uint64) []string {
	var problems []string
	byN := map[uint64][]fencedWrite{}
	var acked []fencedWrite
	unknown := 0
	for _, w := range log.writes {
		if w.acked {
			byN[w.n] = append(byN[w.n], w)
			acked = append(acked, w)
		} else {
			unknown++
		}
	}
	for n, ws := range byN {
		if len(ws) > 1 {
			problems = append(problems, fmt.Sprintf("fenced counter: %d acknowledged writes of %d (tokens %v): an increment was lost", len(ws), n, ws))
		}
	}
	sort.Slice(acked, func(i, j int) bool { return acked[i].n < acked[j].n })
	for i := 1; i < len(acked); i++ {
		if acked[i].token < acked[i-1].token {
			problems = append(problems, fmt.Sprintf("fenced counter: %d written with token %d after %d with token %d", acked[i].n, acked[i].token, acked[i-1].n, acked[i-1].token))
		}
	}
	if len(acked) > 0 && final < acked[len(acked)-1].n {
		problems = append(problems, fmt.Sprintf("fenced counter: final value %d below acknowledged %d", final, acked[len(acked)-1].n))
	}
	if final > uint64(len(acked)+unknown) {
		problems = append(problems, fmt.Sprintf("fenced counter: final value %d, but only %d writes were made", final, len(acked)+unknown))
	}
	return problems
}
