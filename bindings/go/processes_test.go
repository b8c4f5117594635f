package accord

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHelperLockHolder is not a test: it is the other process of the hand-off tests, run by
// re-executing this test binary with ACCORD_HELPER=hold-lock. It takes the mutex
// ACCORD_LOCK with a 2 s session, prints "token N", and holds it until a line "release"
// arrives on stdin (then releases and exits) or it is killed.
func TestHelperLockHolder(t *testing.T) {
	if os.Getenv("ACCORD_HELPER") != "hold-lock" {
		t.Skip("the other process of the hand-off tests")
	}
	ctx := context.Background()
	c, err := Connect(ctx, strings.Split(os.Getenv("ACCORD_ENDPOINTS"), ","))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	s, err := c.NewSession(ctx, WithTTL(2*time.Second))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	m := s.Mutex(os.Getenv("ACCORD_LOCK"))
	token, err := m.Lock(ctx)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Printf("token %d\n", token)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "release" {
			if err := m.Unlock(ctx); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			fmt.Println("released")
			os.Exit(0)
		}
	}
	select {} // stdin closed: hold until killed
}

type lockHolder struct {
	cmd   *exec.Cmd
	stdin interface{ Write([]byte) (int, error) }
	out   *bufio.Scanner
	token uint64
}

// startLockHolder starts another process that takes mutex `name` and reports its token.
func startLockHolder(t *testing.T, addrs []string, name string) *lockHolder {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperLockHolder$", "-test.v")
	cmd.Env = append(os.Environ(), "ACCORD_HELPER=hold-lock", "ACCORD_LOCK="+name,
		"ACCORD_ENDPOINTS="+strings.Join(addrs, ","))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	h := &lockHolder{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	for h.out.Scan() {
		line := h.out.Text()
		if strings.HasPrefix(line, "token ") {
			h.token, _ = strconv.ParseUint(strings.TrimPrefix(line, "token "), 10, 64)
			return h
		}
		if strings.HasPrefix(line, "error") {
			t.Fatalf("the other process: %s", line)
		}
	}
	t.Fatal("the other process ended without taking the lock")
	return nil
}

// lockInBackground starts taking mutex `name` for a session of this process.
func lockInBackground(t *testing.T, c *Client, name string) (*Mutex, chan error) {
	t.Helper()
	s, err := c.NewSession(context.Background(), WithTTL(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	m := s.Mutex(name)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := m.Lock(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("took a lock another process holds: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	return m, done
}

func TestMutexHandoffBetweenProcesses(t *testing.T) {
	_, addrs, c := clusterNodes(t)
	ctx := context.Background()

	// The other process releases: this one gets the lock, with a higher token.
	other := startLockHolder(t, addrs, "handoff")
	m, done := lockInBackground(t, c, "handoff")
	if _, err := other.stdin.Write([]byte("release\n")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("after the release: %v", err)
	}
	if m.Token() <= other.token {
		t.Fatalf("token %d after the other process's %d", m.Token(), other.token)
	}
	if err := m.Unlock(ctx); err != nil {
		t.Fatal(err)
	}

	// The other process is killed while holding it: its session expires (TTL 2 s) and this
	// one gets the lock; the dead holder's token no longer passes a fenced write.
	killed := startLockHolder(t, addrs, "handoff")
	m, done = lockInBackground(t, c, "handoff")
	if err := killed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := <-done; err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	t.Logf("lock taken %v after the holder was killed (its session's TTL: 2s)", time.Since(start))
	if m.Token() <= killed.token {
		t.Fatalf("token %d after the killed process's %d", m.Token(), killed.token)
	}
	ok, err := c.KV().FencedPut(ctx, []byte("handoff"), killed.token, []byte("fenced"), []byte("stale"))
	if err != nil || ok {
		t.Fatalf("the killed holder's token passed a fenced write: %v %v", ok, err)
	}
	ok, err = c.KV().FencedPut(ctx, []byte("handoff"), m.Token(), []byte("fenced"), []byte("fresh"))
	if err != nil || !ok {
		t.Fatalf("the holder's token failed a fenced write: %v %v", ok, err)
	}
}

func TestWatchHasNoGapAcrossLeaderFailover(t *testing.T) {
	nodes, addrs, c := clusterNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	status, err := c.Status(ctx)
	for err == nil && status.Leader == 0 {
		time.Sleep(20 * time.Millisecond)
		status, err = c.Status(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	leader := status.Leader
	// The watcher lists the leader first, so its stream most likely runs through the member
	// about to be stopped.
	endpoints := []string{addrs[leader-1]}
	for i, a := range addrs {
		if uint64(i+1) != leader {
			endpoints = append(endpoints, a)
		}
	}
	watcher, err := Connect(ctx, endpoints)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	first, err := c.KV().Put(ctx, []byte("fo/start"), []byte("-"))
	if err != nil {
		t.Fatal(err)
	}
	events, failed, err := watcher.KV().Watch(ctx, []byte("fo/"), first)
	if err != nil {
		t.Fatal(err)
	}
	const writes = 200
	written := make(chan error, 1)
	go func() {
		for i := 0; i < writes; i++ {
			if i == writes/4 {
				if err := nodes[leader-1].Stop(); err != nil {
					written <- fmt.Errorf("stopping the leader: %w", err)
					return
				}
			}
			if _, err := c.KV().Put(ctx, []byte(fmt.Sprintf("fo/%04d", i)), []byte(strconv.Itoa(i))); err != nil {
				written <- fmt.Errorf("write %d: %w", i, err)
				return
			}
		}
		written <- nil
	}()
	want := []string{"fo/start"}
	for i := 0; i < writes; i++ {
		want = append(want, fmt.Sprintf("fo/%04d", i))
	}
	var last uint64
	for i, key := range want {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("the watch ended after %d events: %v", i, <-failed)
			}
			if string(e.Key) != key || e.Revision <= last {
				t.Fatalf("event %d: %s at revision %d, want %s after revision %d (a gap or a repeat)",
					i, e.Key, e.Revision, key, last)
			}
			last = e.Revision
		case <-ctx.Done():
			t.Fatalf("%d of %d events came (%v)", i, len(want), ctx.Err())
		}
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		t.Fatalf("an event beyond the writes: %s at %d", e.Key, e.Revision)
	case <-time.After(300 * time.Millisecond):
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("the test ran out of time")
	}
}
