package accord

import (
	"context"
	"sort"
	"testing"
	"time"
)

// startLocal starts a one-member cluster in this process and returns the member's client.
func startLocal(b *testing.B) *Client {
	b.Helper()
	addr := freePortsB(b)
	node, err := StartNode(context.Background(), NodeConfig{ID: 1, Listen: addr, Peers: map[uint64]string{}, DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	c, err := node.Client()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c.Close()
		node.Stop()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.KV().Put(ctx, []byte("bench-key"), []byte("value")); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkCgoCall is the cost of crossing into the library and back (a call that does no
// work), the floor under every call of this package.
func BenchmarkCgoCall(b *testing.B) {
	for i := 0; i < b.N; i++ {
		ABIVersion()
	}
}

// BenchmarkLocalGet is a serializable get of one key from a member in this process through
// its own client: cgo, the C ABI, and the hand-off to the member's event loop and back.
func BenchmarkLocalGet(b *testing.B) {
	c := startLocal(b)
	kv := c.KV()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, _, err := kv.GetSerializable(ctx, []byte("bench-key")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMutexCycle is an uncontended acquire + release of a mutex (two replicated writes,
// fsync on) on a one-member cluster in this process.
func BenchmarkMutexCycle(b *testing.B) {
	c := startLocal(b)
	ctx := context.Background()
	s, err := c.NewSession(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m := s.Mutex("bench")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Lock(ctx); err != nil {
			b.Fatal(err)
		}
		if err := m.Unlock(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocalGetOverhead is what Go adds (cgo, this package's wrapper and its context
// handling) to a local serializable get: blocks of calls from Go alternate with blocks of
// the same call looped in C on the same client; reports the median paired difference.
func BenchmarkLocalGetOverhead(b *testing.B) {
	c := startLocal(b)
	kv := c.KV()
	ctx := context.Background()
	key := []byte("bench-key")
	const block = 2000
	var extra []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		for j := 0; j < block; j++ {
			if _, _, _, err := kv.GetSerializable(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
		goNs := float64(time.Since(start).Nanoseconds()) / block
		extra = append(extra, goNs-cGetsNanos(c, key, block))
	}
	sort.Float64s(extra)
	b.ReportMetric(extra[len(extra)/2], "extra-ns/call")
}
