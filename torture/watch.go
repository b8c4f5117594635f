package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	accord "github.com/accord-engine/accord/bindings/go"
)

// The watch workload: watchers of the registers' prefix. Each records the events it got in
// segments (a segment ends only when the watch history it needed was compacted away and the
// watcher had to start again from the present). Checked against the register history:
// revisions strictly increase, every event is a write some client made, and no acknowledged
// write inside a segment's span is missing from it; two watchers agree on every revision
// both saw.

type watchEvent struct {
	revision uint64
	key      string
	value    uint64
}

type watchLog struct {
	segments [][]watchEvent
	restarts int
}

func runWatcher(ctx context.Context, endpoints []string, from uint64, log *watchLog, counts *counters) {
	c, err := connect(endpoints)
	if err != nil {
		counts.note("watcher: " + err.Error())
		return
	}
	defer c.Close()
	next := from
	var segment []watchEvent
	defer func() { log.segments = append(log.segments, segment) }()
	for ctx.Err() == nil {
		events, failed, err := c.KV().Watch(ctx, []byte("reg/"), next)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for event := range events {
			if event.Kind != accord.EventPut {
				continue
			}
			v, _ := strconv.ParseUint(string(event.Value), 10, 64)
			segment = append(segment, watchEvent{event.Revision, string(event.Key), v})
			next = event.Revision + 1
		}
		if ctx.Err() != nil {
			return
		}
		log.restarts++
		err = <-failed
		if errors.Is(err, accord.ErrCompacted) {
			// Start again from the present: a new segment.
			log.segments = append(log.segments, segment)
			segment = nil
			callCtx, cancel := context.WithTimeout(context.Background(), opTimeout)
			revision, perr := c.KV().Put(callCtx, []byte("watch-restart"), []byte("1"))
			cancel()
			if perr == nil {
				next = revision + 1
			}
		}
	}
}

func checkWatches(logs []*watchLog, ops []regOp) []string {
	var problems []string
	written := map[string]map[uint64]bool{} // key → values some client tried to write
	acked := map[uint64]regOp{}             // revision → acknowledged write
	for _, op := range ops {
		if op.kind == opGet || (op.kind == opCas && op.ret >= 0 && !op.ok) {
			continue // reads and swaps known to have failed wrote nothing
		}
		key := string(regKey(op.key))
		if written[key] == nil {
			written[key] = map[uint64]bool{}
		}
		written[key][op.value] = true
		if op.ret >= 0 && op.revision > 0 {
			acked[op.revision] = op
		}
	}
	var ackedRevisions []uint64
	for r := range acked {
		ackedRevisions = append(ackedRevisions, r)
	}
	sort.Slice(ackedRevisions, func(i, j int) bool { return ackedRevisions[i] < ackedRevisions[j] })
	seen := map[uint64]watchEvent{}
	for w, log := range logs {
		for _, segment := range log.segments {
			byRevision := map[uint64]watchEvent{}
			for i, e := range segment {
				if i > 0 && e.revision <= segment[i-1].revision {
					problems = append(problems, fmt.Sprintf("watcher %d: revision %d after %d", w, e.revision, segment[i-1].revision))
				}
				if !written[e.key][e.value] {
					problems = append(problems, fmt.Sprintf("watcher %d: event %s=%d at %d was never written", w, e.key, e.value, e.revision))
				}
				if other, ok := seen[e.revision]; ok && other != e {
					problems = append(problems, fmt.Sprintf("watchers disagree at revision %d: %v and %v", e.revision, other, e))
				}
				seen[e.revision] = e
				byRevision[e.revision] = e
			}
			if len(segment) == 0 {
				continue
			}
			first, last := segment[0].revision, segment[len(segment)-1].revision
			for _, r := range ackedRevisions {
				if r < first || r > last {
					continue
				}
				op := acked[r]
				e, ok := byRevision[r]
				if !ok {
					problems = append(problems, fmt.Sprintf("watcher %d: acknowledged write %s=%d at revision %d missing", w, regKey(op.key), op.value, r))
				} else if e.key != string(regKey(op.key)) || e.value != op.value {
					problems = append(problems, fmt.Sprintf("watcher %d: revision %d is %v, but the write acknowledged there was %s=%d", w, r, e, regKey(op.key), op.value))
				}
			}
		}
	}
	return problems
}
