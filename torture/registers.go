package main

import (
	"context"
	"errors"
	"math/rand"
	"strconv"
	"sync"
	"time"

	accord "github.com/accord-engine/accord/bindings/go"
)

// Register operations: put, linearizable get and compare-and-swap on a few keys, by clients
// that each run one operation at a time. Every value written is unique, so that a read or an
// event names the write it came from.
const (
	opPut = iota
	opGet
	opCas
)

// regOp is one register operation as the client saw it. Times are nanoseconds since the run
// started; `ret` < 0 means the outcome is unknown (the call failed or timed out: the write
// may or may not have happened, at any time after `call`).
type regOp struct {
	client   int
	key      int
	kind     int
	value    uint64 // put: the value; cas: the new value
	expected uint64 // cas
	call     int64
	ret      int64
	// get: found and value; cas: ok. revision: the write's revision (put, successful cas).
	found    bool
	out      uint64
	ok       bool
	revision uint64
}

type history struct {
	mu    sync.Mutex
	start time.Time
	ops   []regOp
}

func (h *history) now() int64 { return time.Since(h.start).Nanoseconds() }

func (h *history) add(op regOp) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

func regKey(k int) []byte { return []byte("reg/" + strconv.Itoa(k)) }

// runRegisterClient runs operations until ctx ends. Values are client<<40 | sequence.
func runRegisterClient(ctx context.Context, endpoints []string, client, keys int, seed int64,
	h *history, counts *counters) {
	rng := rand.New(rand.NewSource(seed))
	c, err := connect(endpoints)
	if err != nil {
		counts.note("register client: " + err.Error())
		return
	}
	defer c.Close()
	kv := c.KV()
	seen := map[int]uint64{} // the last value this client saw or wrote, per key
	seq := uint64(0)
	for ctx.Err() == nil {
		// About 40 operations a second per client: enough to overlap every fault, few
		// enough that a 30-minute history stays checkable.
		time.Sleep(time.Duration(10+rng.Intn(30)) * time.Millisecond)
		k := rng.Intn(keys)
		op := regOp{client: client, key: k}
		callCtx, cancel := context.WithTimeout(context.Background(), opTimeout)
		switch last, known := seen[k]; {
		case rng.Intn(3) == 0:
			op.kind = opGet
			op.call = h.now()
			value, found, _, err := kv.Get(callCtx, regKey(k))
			op.ret = h.now()
			if err != nil {
				cancel()
				counts.failed()
				continue // a failed read tells nothing
			}
			op.found = found
			if found {
				op.out, _ = strconv.ParseUint(string(value), 10, 64)
				seen[k] = op.out
			}
		case known && rng.Intn(2) == 0:
			seq++
			op.kind, op.expected, op.value = opCas, last, uint64(client)<<40|seq
			op.call = h.now()
			resp, err := kv.Txn(callCtx).
				If(accord.ValueIs(regKey(k), []byte(strconv.FormatUint(last, 10)))).
				Then(accord.OpPut(regKey(k), []byte(strconv.FormatUint(op.value, 10)))).
				Commit()
			op.ret = h.now()
			if err != nil {
				op.ret = -1
				counts.failed()
			} else {
				op.ok = resp.Succeeded
				if op.ok {
					op.revision = resp.Revision
					seen[k] = op.value
				} else {
					delete(seen, k) // read it again before the next swap
				}
			}
		default:
			seq++
			op.kind, op.value = opPut, uint64(client)<<40|seq
			op.call = h.now()
			revision, err := kv.Put(callCtx, regKey(k), []byte(strconv.FormatUint(op.value, 10)))
			op.ret = h.now()
			if err != nil {
				op.ret = -1
				counts.failed()
			} else {
				op.revision = revision
				seen[k] = op.value
			}
		}
		cancel()
		if op.ret >= 0 {
			counts.ok()
		}
		h.add(op)
	}
}

// connect opens a client whose calls give up after opTimeout (retries included).
func connect(endpoints []string) (*accord.Client, error) {
	return accord.Connect(context.Background(), endpoints, accord.WithCallTimeout(opTimeout))
}

// An operation still unanswered after this is recorded with an unknown outcome.
const opTimeout = 3 * time.Second

// counters: operations that succeeded and failed, and the first few distinct errors.
type counters struct {
	mu        sync.Mutex
	succeeded int64
	failures  int64
	notes     map[string]int
}

func (c *counters) ok() {
	c.mu.Lock()
	c.succeeded++
	c.mu.Unlock()
}

func (c *counters) failed() {
	c.mu.Lock()
	c.failures++
	c.mu.Unlock()
}

func (c *counters) note(s string) {
	c.mu.Lock()
	if c.notes == nil {
		c.notes = map[string]int{}
	}
	if len(c.notes) < 100 {
		c.notes[s]++
	}
	c.mu.Unlock()
}

var errViolation = errors.New("violation")
