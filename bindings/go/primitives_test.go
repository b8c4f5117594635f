package accord

import (
	"context"
	"testing"
	"time"
)

func TestPrimitives(t *testing.T) {
	c := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := c.NewSession(ctx, WithTTL(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := c.NewSession(ctx, WithTTL(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// Read-write lock: two readers share it.
	r1, err := a.RWMutex("rw").RLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := b.RWMutex("rw").RLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r1.Release()
	r2.Release()
	w, err := a.RWMutex("rw").Lock(ctx)
	if err != nil || !w.IsHeld() {
		t.Fatal(err)
	}
	w.Release()
	p, err := a.Semaphore(ctx, "sem", 2)
	if err != nil {
		t.Fatal(err)
	}
	p.Release()

	// Election with an observer.
	changes, err := c.Observe(ctx, "e")
	if err != nil {
		t.Fatal(err)
	}
	if first := <-changes; first.Present {
		t.Fatal("a leader before anyone campaigned")
	}
	l, err := a.Campaign(ctx, "e", []byte("alpha"))
	if err != nil || !l.IsLeader() {
		t.Fatal(err)
	}
	if got := <-changes; !got.Present || got.Token != l.Token || string(got.Value) != "alpha" {
		t.Fatalf("observed %+v", got)
	}
	l.Resign()

	// Group, queue, barrier, counter.
	leave, err := a.Join(ctx, "g", "w1", []byte("meta"))
	if err != nil {
		t.Fatal(err)
	}
	if err := leave(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(ctx, "q", []byte("job")); err != nil {
		t.Fatal(err)
	}
	claim, err := b.Claim(ctx, "q")
	if err != nil || string(claim.Payload) != "job" {
		t.Fatalf("claim: %v", err)
	}
	if err := claim.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := a.Barrier(ctx, "b", 1); err != nil {
		t.Fatal(err)
	}
	if v, err := c.CounterAdd(ctx, "c", 3); err != nil || v != 3 {
		t.Fatalf("counter: %d %v", v, err)
	}

	// Watch: ordered, complete.
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	_, _, rev, _ := c.KV().GetSerializable(ctx, []byte("x"))
	events, failed, err := c.KV().Watch(wctx, []byte("w/"), rev+1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		c.KV().Put(ctx, []byte{'w', '/', byte('0' + i)}, []byte("v"))
	}
	var last uint64
	for i := 0; i < 5; i++ {
		select {
		case e := <-events:
			if e.Revision <= last || e.Kind != EventPut {
				t.Fatalf("event %+v after revision %d", e, last)
			}
			last = e.Revision
		case err := <-failed:
			t.Fatal(err)
		case <-time.After(5 * time.Second):
			t.Fatal("a watch event did not come")
		}
	}
}
