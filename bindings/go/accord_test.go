package accord

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var listeners []net.Listener
	var addrs []string
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, l)
		addrs = append(addrs, l.Addr().String())
	}
	for _, l := range listeners {
		l.Close()
	}
	return addrs
}

func freePortsB(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// cluster starts three members in this process and returns a client of all three.
func cluster(t *testing.T) *Client {
	t.Helper()
	_, _, c := clusterNodes(t)
	return c
}

// clusterNodes starts three members in this process; returns them (member i+1 is nodes[i]),
// their addresses and a client of all three. They are stopped when the test ends.
func clusterNodes(t *testing.T) ([]*Node, []string, *Client) {
	t.Helper()
	ctx := context.Background()
	addrs := freePorts(t, 3)
	dir := t.TempDir()
	var nodes []*Node
	for i := range addrs {
		peers := map[uint64]string{}
		for j, a := range addrs {
			if j != i {
				peers[uint64(j+1)] = a
			}
		}
		n, err := StartNode(ctx, NodeConfig{ID: uint64(i + 1), Listen: addrs[i], Peers: peers, DataDir: fmt.Sprintf("%s/n%d", dir, i+1)})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	c, err := Connect(ctx, addrs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		for _, n := range nodes {
			n.Stop()
		}
	})
	return nodes, addrs, c
}

func TestKV(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	kv := c.KV()
	rev, err := kv.Put(ctx, []byte("greeting"), []byte("hello"))
	if err != nil || rev == 0 {
		t.Fatalf("put: %v %d", err, rev)
	}
	value, found, _, err := kv.Get(ctx, []byte("greeting"))
	if err != nil || !found || string(value) != "hello" {
		t.Fatalf("get: %q %v %v", value, found, err)
	}
	if _, found, _, _ := kv.GetSerializable(ctx, []byte("absent")); found {
		t.Fatal("found an absent key")
	}
	pairs, err := kv.Range(ctx, []byte("gr"), 0)
	if err != nil || len(pairs) != 1 || string(pairs[0].Value) != "hello" {
		t.Fatalf("range: %v %v", pairs, err)
	}
	deleted, err := kv.Delete(ctx, []byte("greeting"))
	if err != nil || !deleted {
		t.Fatalf("delete: %v %v", deleted, err)
	}
	if _, err := kv.Put(ctx, nil, []byte("v")); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("an empty key: %v", err)
	}
}

func TestMutexHandoffBetweenGoroutinesIsFencedAndOrdered(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	var mu sync.Mutex
	var tokens []uint64
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := c.NewSession(ctx, WithTTL(5*time.Second))
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			m := s.Mutex("m")
			for i := 0; i < 3; i++ {
				token, err := m.Lock(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				ok, err := c.KV().FencedPut(ctx, []byte("m"), token, []byte("data"), []byte(fmt.Sprint(token)))
				if err != nil || !ok {
					t.Errorf("the holder's fenced write failed: %v %v", ok, err)
				}
				mu.Lock()
				tokens = append(tokens, token)
				mu.Unlock()
				if err := m.Unlock(ctx); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if len(tokens) != 12 {
		t.Fatalf("%d grants", len(tokens))
	}
	seen := map[uint64]bool{}
	for _, tok := range tokens {
		if seen[tok] {
			t.Fatalf("token %d granted twice", tok)
		}
		seen[tok] = true
	}
	// A stale token's fenced write is refused.
	ok, err := c.KV().FencedPut(ctx, []byte("m"), tokens[0], []byte("data"), []byte("stale"))
	if err != nil || ok {
		t.Fatalf("a stale fenced write: %v %v", ok, err)
	}
}

func TestCancellingABlockedLockReturnsWithin100ms(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	holder, err := c.NewSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	waiter, err := c.NewSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	if _, err := holder.Mutex("m").Lock(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	go func() {
		time.Sleep(300 * time.Millisecond)
		cancel()
	}()
	started := time.Now()
	_, err = waiter.Mutex("m").Lock(wctx)
	took := time.Since(started) - 300*time.Millisecond
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled wait returned %v", err)
	}
	// The library looks at cancellations every 40 ms, then withdraws the wait (one write):
	// the target is 100 ms; a loaded machine gets some slack.
	t.Logf("a cancelled Lock returned %v after its context was cancelled", took)
	if took > 150*time.Millisecond {
		t.Fatalf("the cancelled wait returned %v after the cancellation", took)
	}
	// A deadline bounds the wait too.
	dctx, done := context.WithTimeout(ctx, 300*time.Millisecond)
	defer done()
	if _, err := waiter.Mutex("m").Lock(dctx); err == nil {
		t.Fatal("a wait past its deadline succeeded")
	}
}

func TestClosedHandlesReturnErrShutdown(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	s, err := c.NewSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
	if _, err := s.Mutex("m").Lock(ctx); !errors.Is(err, ErrShutdown) {
		t.Fatalf("lock after close: %v", err)
	}
	c.Close()
	if _, err := c.KV().Put(ctx, []byte("k"), []byte("v")); !errors.Is(err, ErrShutdown) {
		t.Fatalf("put after close: %v", err)
	}
}

func TestManySessionsStayAliveAndRenewOnDemand(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	var sessions []*Session
	for i := 0; i < 200; i++ {
		s, err := c.NewSession(ctx, WithTTL(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		sessions = append(sessions, s)
	}
	// Three TTLs later the library's own keepalives have kept every one alive.
	time.Sleep(3 * time.Second)
	lost := 0
	for _, s := range sessions {
		if state, err := s.State(); err != nil || state != SessionHeld {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d sessions of %d not held", lost, len(sessions))
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < len(sessions); i += 4 {
				if err := sessions[i].KeepAliveOnce(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	if err := sessions[0].Close(); err != nil {
		t.Fatal(err)
	}
	if err := sessions[0].KeepAliveOnce(ctx); !errors.Is(err, ErrShutdown) {
		t.Fatalf("renewing a closed session: %v", err)
	}
}
