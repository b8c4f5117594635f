package accord

import (
	"context"
	"runtime"
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

// BenchmarkLocalGetOverhead compares a local serializable get made from Go with the same
// call looped in C on the same client: blocks of each alternate; reports the median paired
// difference per call. The calls take tens of microseconds here (two thread hand-offs to
// the member's event loop and back) and their cost depends on their pace, so this
// difference is noisy by about a microsecond; BenchmarkLocalGetWrapper isolates what Go
// adds more precisely.
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

// BenchmarkLocalGetWrapper is what this package's wrapper (context, handle lock, locked OS
// thread, error translation, copying the value into Go memory) adds to the bare cgo calls of
// a local serializable get: blocks of GetSerializable alternate with blocks of the same get
// made with bare cgo calls, on the same thread at the same pace; reports the median paired
// difference per call in wall time and in the thread's CPU time. Adding BenchmarkCgoCall's
// figure twice (the get and the buffer's release) gives Go's whole overhead.
func BenchmarkLocalGetWrapper(b *testing.B) {
	c := startLocal(b)
	kv := c.KV()
	ctx := context.Background()
	key := []byte("bench-key")
	const block = 2000
	var extra, extraCPU []float64
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start, startCPU := time.Now(), threadCPUNanos()
		for j := 0; j < block; j++ {
			if _, _, _, err := kv.GetSerializable(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
		wrapped := float64(time.Since(start).Nanoseconds()) / block
		wrappedCPU := float64(threadCPUNanos()-startCPU) / block
		start, startCPU = time.Now(), threadCPUNanos()
		for j := 0; j < block; j++ {
			if !rawGetSerializable(c, key) {
				b.Fatal("bare get failed")
			}
		}
		bare := float64(time.Since(start).Nanoseconds()) / block
		bareCPU := float64(threadCPUNanos()-startCPU) / block
		extra = append(extra, wrapped-bare)
		extraCPU = append(extraCPU, wrappedCPU-bareCPU)
	}
	sort.Float64s(extra)
	sort.Float64s(extraCPU)
	b.ReportMetric(extra[len(extra)/2], "extra-ns/call")
	b.ReportMetric(extraCPU[len(extraCPU)/2], "extra-cpu-ns/call")
}
