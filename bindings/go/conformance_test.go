package accord

// The conformance scenarios of tests/conformance (format in its README), run through the Go
// API. The Rust, C and Python suites run the same files and must give the same results.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

type conformanceStep struct {
	line     int
	text     string
	op       string
	args     []string
	expected []string
}

func conformanceToken(raw string) string {
	if raw == `""` {
		return ""
	}
	return raw
}

func parseScenario(t *testing.T, path string) []conformanceStep {
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var steps []conformanceStep
	scanner := bufio.NewScanner(file)
	for number := 1; scanner.Scan(); number++ {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		call, expected, ok := strings.Cut(line, "->")
		if !ok {
			t.Fatalf("%s:%d: no `->`", path, number)
		}
		words := strings.Fields(call)
		step := conformanceStep{line: number, text: line, op: words[0]}
		for _, w := range words[1:] {
			step.args = append(step.args, conformanceToken(w))
		}
		for _, w := range strings.Fields(expected) {
			step.expected = append(step.expected, conformanceToken(w))
		}
		steps = append(steps, step)
	}
	return steps
}

// checkResult matches actual against expected, binding variables; "" when it matches.
func checkResult(bindings map[string]string, expected, actual []string) string {
	if len(expected) != len(actual) {
		return "a different number of tokens"
	}
	for i, want := range expected {
		got := actual[i]
		if want == "*" {
			continue
		}
		if !strings.HasPrefix(want, "$") {
			if want != got {
				return fmt.Sprintf("%q where %q was expected", got, want)
			}
			continue
		}
		name, above, hasAbove := strings.Cut(want[1:], ">$")
		if hasAbove {
			floor, ok := bindings[above]
			if !ok {
				return "$" + above + " is not bound"
			}
			value, err := strconv.ParseInt(got, 10, 64)
			limit, _ := strconv.ParseInt(floor, 10, 64)
			if err != nil || value <= limit {
				return fmt.Sprintf("%q is not above $%s = %s", got, above, floor)
			}
		}
		if bound, ok := bindings[name]; ok && bound != got {
			return fmt.Sprintf("%q is not $%s = %q", got, name, bound)
		}
		bindings[name] = got
	}
	return ""
}

// conformanceErrorKind is the result kind of a failed call: the C result code's name in
// lower case (a context's deadline is a timeout, its cancellation a cancellation).
func conformanceErrorKind(err error) string {
	kinds := []struct {
		err  error
		kind string
	}{
		{context.DeadlineExceeded, "timeout"}, {ErrTimeout, "timeout"},
		{context.Canceled, "cancelled"}, {ErrCancelled, "cancelled"},
		{ErrInvalidArgument, "invalid_argument"}, {ErrShutdown, "shutdown"},
		{ErrUnavailable, "unavailable"}, {ErrRejected, "rejected"},
		{ErrSessionLost, "session_lost"}, {ErrCompacted, "compacted"},
		{ErrPermission, "permission_denied"},
		{ErrIO, "io"}, {ErrConfig, "config"},
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	return "other"
}

type conformanceWatch struct {
	events  <-chan Event
	failed  <-chan error
	pending []Event
}

// conformanceWorld is one single-member cluster, a client of it, and the handles the steps
// named.
type conformanceWorld struct {
	ctx      context.Context
	node     *Node
	client   *Client
	sessions map[string]*Session
	held     map[string]any
	watches  map[string]*conformanceWatch
	stopped  bool
}

func atoi(text string) int64 {
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		panic(fmt.Sprintf("%q is not a number", text))
	}
	return n
}

func millis(text string) time.Duration { return time.Duration(atoi(text)) * time.Millisecond }

func parseTxn(kv *KV, ctx context.Context, args []string) *Txn {
	then, otherwise := -1, -1
	for i, a := range args {
		if a == "then" && then < 0 {
			then = i
		} else if a == "else" && otherwise < 0 {
			otherwise = i
		}
	}
	groups := func(part []string) [][]string {
		var out [][]string
		current := []string{}
		for _, w := range part {
			if w == "," {
				out = append(out, current)
				current = []string{}
			} else {
				current = append(current, w)
			}
		}
		if len(current) > 0 {
			out = append(out, current)
		}
		return out
	}
	txn := kv.Txn(ctx)
	for _, c := range groups(args[:then]) {
		key := []byte(c[1])
		switch c[0] {
		case "value":
			txn.If(ValueIs(key, []byte(c[2])))
		case "exists":
			txn.If(KeyExists(key))
		case "absent":
			txn.If(KeyAbsent(key))
		case "version":
			txn.If(VersionIs(key, uint64(atoi(c[2]))))
		case "mod":
			txn.If(ModRevisionIs(key, uint64(atoi(c[2]))))
		case "lock":
			txn.If(LockTokenIs(c[1], uint64(atoi(c[2]))))
		case "leader":
			txn.If(LeaderTokenIs(c[1], uint64(atoi(c[2]))))
		default:
			panic("txn: unknown comparison " + c[0])
		}
	}
	ops := func(part []string) []Op {
		var out []Op
		for _, o := range groups(part) {
			if o[0] == "put" {
				out = append(out, OpPut([]byte(o[1]), []byte(o[2])))
			} else {
				out = append(out, OpDelete([]byte(o[1])))
			}
		}
		return out
	}
	return txn.Then(ops(args[then+1 : otherwise])...).Else(ops(args[otherwise+1:])...)
}

func yes(b bool, y, n string) []string {
	if b {
		return []string{y}
	}
	return []string{n}
}

// run runs one step: its result tokens, or the error it failed with.
func (w *conformanceWorld) run(op string, a []string) ([]string, error) {
	ctx := w.ctx
	kv := w.client.KV()
	within := func(ms string) (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, millis(ms))
	}
	token := func(t uint64) []string { return []string{"token", strconv.FormatUint(t, 10)} }
	switch op {
	case "put":
		rev, err := kv.Put(ctx, []byte(a[0]), []byte(a[1]))
		return []string{"rev", strconv.FormatUint(rev, 10)}, err
	case "get":
		value, found, _, err := kv.Get(ctx, []byte(a[0]))
		if !found {
			return []string{"absent"}, err
		}
		return []string{"value", string(value)}, err
	case "delete":
		deleted, err := kv.Delete(ctx, []byte(a[0]))
		return yes(deleted, "deleted", "absent"), err
	case "range":
		kvs, err := kv.Range(ctx, []byte(a[0]), 0)
		out := []string{"kvs", strconv.Itoa(len(kvs))}
		for _, p := range kvs {
			out = append(out, string(p.Key), string(p.Value))
		}
		return out, err
	case "cas":
		var expected []byte
		if a[1] != "-" {
			expected = []byte(a[1])
		}
		swapped, err := kv.CompareAndSwap(ctx, []byte(a[0]), expected, []byte(a[2]))
		return yes(swapped, "swapped", "unchanged"), err
	case "txn":
		response, err := parseTxn(kv, ctx, a).Commit()
		return yes(response.Succeeded, "succeeded", "failed"), err
	case "session":
		s, err := w.client.NewSession(ctx, WithTTL(millis(a[1])))
		if err == nil {
			w.sessions[a[0]] = s
		}
		return []string{"ok"}, err
	case "state":
		state, err := w.sessions[a[0]].State()
		return []string{state.String()}, err
	case "await-lost":
		s := w.sessions[a[0]]
		select {
		case <-s.Done():
		case <-time.After(millis(a[1])):
		}
		state, err := s.State()
		return []string{state.String()}, err
	case "close":
		return []string{"ok"}, w.sessions[a[0]].Close()
	case "lock":
		wait, cancel := within(a[3])
		defer cancel()
		m := w.sessions[a[0]].Mutex(a[2])
		t, err := m.Lock(wait)
		w.held[a[1]] = m
		return token(t), err
	case "rlock", "wlock", "semaphore":
		s := w.sessions[a[0]]
		var held *Held
		var err error
		switch op {
		case "rlock":
			wait, cancel := within(a[3])
			defer cancel()
			held, err = s.RWMutex(a[2]).RLock(wait)
		case "wlock":
			wait, cancel := within(a[3])
			defer cancel()
			held, err = s.RWMutex(a[2]).Lock(wait)
		default:
			wait, cancel := within(a[4])
			defer cancel()
			held, err = s.Semaphore(wait, a[2], uint32(atoi(a[3])))
		}
		if err != nil {
			return nil, err
		}
		w.held[a[1]] = held
		return token(held.Token), nil
	case "release":
		switch h := w.held[a[0]].(type) {
		case *Mutex:
			return []string{"ok"}, h.Unlock(ctx)
		case *Held:
			return []string{"ok"}, h.Release()
		}
		panic(a[0] + " is not a lock")
	case "campaign":
		wait, cancel := within(a[4])
		defer cancel()
		l, err := w.sessions[a[0]].Campaign(wait, a[2], []byte(a[3]))
		if err != nil {
			return nil, err
		}
		w.held[a[1]] = l
		return token(l.Token), nil
	case "proclaim":
		return []string{"ok"}, w.held[a[0]].(*Leadership).Proclaim([]byte(a[1]))
	case "resign":
		return []string{"ok"}, w.held[a[0]].(*Leadership).Resign()
	case "leader":
		leader, err := w.client.Leader(ctx, a[0])
		if !leader.Present {
			return []string{"none"}, err
		}
		return []string{"leader", string(leader.Value), "token", strconv.FormatUint(leader.Token, 10)}, err
	case "join":
		leave, err := w.sessions[a[0]].Join(ctx, a[2], a[3], []byte(a[4]))
		w.held[a[1]] = leave
		return []string{"ok"}, err
	case "leave":
		return []string{"ok"}, w.held[a[0]].(func() error)()
	case "members":
		members, err := w.client.Members(ctx, a[0])
		out := []string{"members", strconv.Itoa(len(members))}
		for _, m := range members {
			out = append(out, m.ID, string(m.Metadata))
		}
		return out, err
	case "enqueue":
		item, err := w.client.Enqueue(ctx, a[0], []byte(a[1]))
		return []string{"item", strconv.FormatUint(item, 10)}, err
	case "claim":
		wait, cancel := within(a[3])
		defer cancel()
		c, err := w.sessions[a[0]].Claim(wait, a[2])
		if err != nil {
			return nil, err
		}
		w.held[a[1]] = c
		return []string{"item", strconv.FormatUint(c.Item, 10), "payload", string(c.Payload)}, nil
	case "ack":
		return []string{"ok"}, w.held[a[0]].(*Claim).Ack()
	case "nack":
		return []string{"ok"}, w.held[a[0]].(*Claim).Release()
	case "held":
		switch h := w.held[a[0]].(type) {
		case *Mutex:
			return yes(h.IsHeld(), "true", "false"), nil
		case *Held:
			return yes(h.IsHeld(), "true", "false"), nil
		case *Leadership:
			return yes(h.IsLeader(), "true", "false"), nil
		case *Claim:
			return yes(h.IsHeld(), "true", "false"), nil
		}
		panic(a[0] + " is not a lock, leadership or claim")
	case "barrier":
		wait, cancel := within(a[3])
		defer cancel()
		return []string{"ok"}, w.sessions[a[0]].Barrier(wait, a[1], uint32(atoi(a[2])))
	case "add":
		value, err := w.client.CounterAdd(ctx, a[0], atoi(a[1]))
		return []string{"value", strconv.FormatInt(value, 10)}, err
	case "counter":
		value, err := w.client.Counter(ctx, a[0])
		return []string{"value", strconv.FormatInt(value, 10)}, err
	case "watch":
		events, failed, err := kv.Watch(ctx, []byte(a[1]), uint64(atoi(a[2])))
		w.watches[a[0]] = &conformanceWatch{events: events, failed: failed}
		return []string{"ok"}, err
	case "events":
		watch := w.watches[a[0]]
		count := int(atoi(a[1]))
		deadline := time.After(millis(a[2]))
		var out []string
		for seen := 0; seen < count; {
			if len(watch.pending) > 0 {
				e := watch.pending[0]
				watch.pending = watch.pending[1:]
				seen++
				rev := strconv.FormatUint(e.Revision, 10)
				if e.Kind == EventPut {
					out = append(out, "put", string(e.Key), string(e.Value), rev)
				} else {
					out = append(out, "delete", string(e.Key), rev)
				}
				continue
			}
			select {
			case e, ok := <-watch.events:
				if !ok {
					return nil, <-watch.failed
				}
				watch.pending = append(watch.pending, e)
			case <-deadline:
				return append(out, "timeout"), nil
			}
		}
		return out, nil
	case "stop-node":
		w.stopped = true
		return []string{"ok"}, w.node.Stop()
	}
	panic("unknown step " + op)
}

func runScenario(t *testing.T, path string) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := freePorts(t, 1)[0]
	node, err := StartNode(ctx, NodeConfig{ID: 1, Listen: addr, DataDir: filepath.Join(t.TempDir(), "data")})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Stop()
	client, err := node.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	w := &conformanceWorld{ctx: ctx, node: node, client: client, sessions: map[string]*Session{},
		held: map[string]any{}, watches: map[string]*conformanceWatch{}}
	defer func() {
		// Sessions end with the member when it was stopped; closing them then would only
		// wait for an answer that cannot come.
		if !w.stopped {
			for _, s := range w.sessions {
				s.Close()
			}
		}
	}()
	bindings := map[string]string{}
	steps := parseScenario(t, path)
	for _, step := range steps {
		args := make([]string, len(step.args))
		for i, arg := range step.args {
			if strings.HasPrefix(arg, "$") {
				bound, ok := bindings[arg[1:]]
				if !ok {
					t.Fatalf("%s:%d: %s is not bound", path, step.line, arg)
				}
				arg = bound
			}
			args[i] = arg
		}
		actual, err := w.run(step.op, args)
		if err != nil {
			actual = []string{"error", conformanceErrorKind(err)}
		}
		if why := checkResult(bindings, step.expected, actual); why != "" {
			t.Fatalf("%s:%d: %s\n  got: %s\n  (%s)", path, step.line, step.text, strings.Join(actual, " "), why)
		}
	}
	return len(steps)
}

func TestConformance(t *testing.T) {
	paths, err := filepath.Glob("../../tests/conformance/*.scn")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scenarios in tests/conformance (%v)", err)
	}
	sort.Strings(paths)
	for _, path := range paths {
		path := path
		t.Run(strings.TrimSuffix(filepath.Base(path), ".scn"), func(t *testing.T) {
			steps := runScenario(t, path)
			t.Logf("conformance go %s: %d steps ok", filepath.Base(path), steps)
		})
	}
}
