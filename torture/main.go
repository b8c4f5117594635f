// Command torture runs real `accord server` processes under faults while clients use them,
// then checks what the clients saw:
//
//   - register histories (put, get, compare-and-swap) are linearizable, by Porcupine and by
//     accord's own checker, which must agree;
//   - a mutex guarding a fenced counter never lets an increment be lost or a stale token's
//     write be accepted;
//   - queue items are acknowledged exactly once, and none is lost;
//   - every watcher's events are the committed writes, in order, without gaps.
//
// It ends with one line
//
//	torture: seconds=… ops=… faults=… kills=… pauses=… partitions=… violations=0 porcupine=ok write_availability=… longest_unavailable_ms=…
//
// and exits non-zero on any violation. Every process it starts is stopped before it exits.
//
// usage: torture --accord PATH [--duration S] [--nodes 3|5] [--seed N] [--dir D]
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	binary := flag.String("accord", "", "the accord binary")
	duration := flag.Float64("duration", 120, "seconds of faults")
	nodes := flag.Int("nodes", 3, "members (3 or 5)")
	seed := flag.Int64("seed", 0, "the nemesis's seed (0: from the clock)")
	dir := flag.String("dir", "", "directory for data, logs and the history (default: a temporary one, removed on success)")
	ttl := flag.Duration("ttl", 2*time.Second, "session TTL of the clients")
	faults := flag.String("faults", strings.Join(faultKinds, ","), "fault kinds to inject")
	flag.Parse()
	if *binary == "" || *duration <= 0 || (*nodes != 3 && *nodes != 5) {
		fmt.Fprintln(os.Stderr, "usage: torture --accord PATH [--duration S] [--nodes 3|5] [--seed N] [--dir D] [--faults K,...]")
		os.Exit(2)
	}
	kinds := strings.Split(*faults, ",")
	for _, k := range kinds {
		if !contains(faultKinds, k) {
			fmt.Fprintf(os.Stderr, "torture: unknown fault %q (known: %s)\n", k, strings.Join(faultKinds, ","))
			os.Exit(2)
		}
	}
	if *seed == 0 {
		*seed = time.Now().UnixNano()
	}
	keep := *dir != ""
	clockFile := os.Getenv(clockEnv)
	if contains(kinds, "clock") && clockFile == "" {
		// Before anything else: the process is replaced.
		clockDir, err := os.MkdirTemp("", "accord-torture-clock-")
		if err != nil {
			fail(err)
		}
		fail(reexecUnderFakeTime(filepath.Join(clockDir, "offset")))
	}
	if !keep {
		d, err := os.MkdirTemp("", "accord-torture-")
		if err != nil {
			fail(err)
		}
		*dir = d
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		fail(err)
	}
	absolute, err := filepath.Abs(*binary)
	if err != nil {
		fail(err)
	}
	say := func(s string) { fmt.Fprintf(os.Stderr, "torture: %s\n", s) }
	say(fmt.Sprintf("seed %d, %d members, %g s of faults (%s), data in %s", *seed, *nodes, *duration, *faults, *dir))

	c, err := startCluster(absolute, *dir, *nodes, 20, 15)
	if err != nil {
		fail(err)
	}
	// Whatever happens (an error, Ctrl-C), no server is left running.
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-interrupted
		c.stop()
		os.Exit(130)
	}()
	code := run(c, absolute, *dir, *duration, *seed, *ttl, kinds, clockFile, say)
	c.stop()
	if clockFile != "" {
		os.RemoveAll(filepath.Dir(clockFile))
	}
	if code == 0 && !keep {
		os.RemoveAll(*dir)
	} else {
		say("data, logs and history kept in " + *dir)
	}
	os.Exit(code)
}

func run(c *cluster, binary, dir string, duration float64, seed int64, ttl time.Duration,
	kinds []string, clockFile string, say func(string)) int {
	endpoints := c.endpoints()
	ready, err := connect(endpoints)
	if err != nil {
		fail(err)
	}
	var start uint64
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		start, err = ready.KV().Put(ctx, []byte("ready"), []byte("1"))
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			fail(fmt.Errorf("the cluster did not elect a leader within 30 s: %v", err))
		}
		time.Sleep(100 * time.Millisecond)
	}
	ready.Close()

	h := &history{start: time.Now()}
	counts := &counters{}
	fenced := &fencedLog{}
	queue := newQueueLog()
	watches := []*watchLog{{}, {}}
	ctx, stopClients := context.WithCancel(context.Background())
	var clients sync.WaitGroup
	spawn := func(f func()) {
		clients.Add(1)
		go func() {
			defer clients.Done()
			f()
		}()
	}
	const registerClients, keys = 6, 8
	for i := 0; i < registerClients; i++ {
		i := i
		spawn(func() { runRegisterClient(ctx, endpoints, i, keys, seed+int64(i), h, counts) })
	}
	for i := 0; i < 3; i++ {
		spawn(func() { runFencedHolder(ctx, endpoints, ttl, fenced, counts) })
	}
	for i := 0; i < 2; i++ {
		i := i
		spawn(func() { runProducer(ctx, endpoints, i, queue, counts) })
		spawn(func() { runConsumer(ctx, endpoints, ttl, queue, counts, false) })
	}
	var watchers sync.WaitGroup
	for _, w := range watches {
		w := w
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			runWatcher(ctx, endpoints, start+1, w, counts)
		}()
	}

	n := &nemesis{c: c, rng: rand.New(rand.NewSource(seed)), ttl: ttl, kinds: kinds,
		counts: map[string]int{}, log: say, clockFile: clockFile}
	faultCtx, stopFaults := context.WithTimeout(context.Background(), time.Duration(duration*float64(time.Second)))
	defer stopFaults()
	progress := time.NewTicker(10 * time.Second)
	nemesisDone := make(chan error, 1)
	go func() { nemesisDone <- n.run(faultCtx) }()
	began := time.Now()
wait:
	for {
		select {
		case err := <-nemesisDone:
			if err != nil {
				fail(err)
			}
			break wait
		case <-progress.C:
			counts.mu.Lock()
			say(fmt.Sprintf("t=%.0fs ops=%d failed=%d faults=%d", time.Since(began).Seconds(), counts.succeeded, counts.failures, n.total()))
			counts.mu.Unlock()
		}
	}
	progress.Stop()
	seconds := time.Since(began).Seconds()
	say("faults over; the cluster is healed; clients run on for 5 s")
	time.Sleep(5 * time.Second)
	stopClients()
	clients.Wait()
	watchers.Wait()

	// Drain the queue, then read the fenced counter.
	say("draining the queue")
	var drain sync.WaitGroup
	for i := 0; i < 2; i++ {
		drain.Add(1)
		go func() {
			defer drain.Done()
			runConsumer(context.Background(), endpoints, ttl, queue, counts, true)
		}()
	}
	drain.Wait()
	final, err := readFenced(endpoints)
	if err != nil {
		fail(err)
	}

	// Check.
	var problems []string
	problems = append(problems, checkFenced(fenced, final)...)
	problems = append(problems, checkQueue(queue)...)
	problems = append(problems, checkWatches(watches, h.ops)...)
	historyFile := filepath.Join(dir, "history.txt")
	if err := writeHistory(historyFile, h.ops); err != nil {
		fail(err)
	}
	say(fmt.Sprintf("checking %d register operations (Porcupine, then accord lincheck)", len(h.ops)))
	porcupineVerdict := checkPorcupine(h.ops, 5*time.Minute)
	own, err := checkOwn(binary, historyFile)
	if err != nil {
		fail(err)
	}
	if porcupineVerdict != "ok" {
		problems = append(problems, "porcupine: the register history is "+porcupineVerdict)
	}
	if own != "ok" {
		problems = append(problems, "accord lincheck: the register history is not linearizable")
	}
	if porcupineVerdict != "unknown" && porcupineVerdict != own {
		problems = append(problems, fmt.Sprintf("the checkers disagree: porcupine=%s accord=%s", porcupineVerdict, own))
	}
	for _, p := range problems {
		say("VIOLATION: " + p)
	}
	for note, times := range counts.notes {
		say(fmt.Sprintf("note (%d times): %s", times, note))
	}
	availability, longest := writeAvailability(h.ops)
	say(fmt.Sprintf("faults by kind: %s; fenced writes=%d cycles=%d; queue enqueued=%d acked=%d; watch events=%d,%d",
		n.summary(), len(fenced.writes), fenced.cycles, len(queue.enqueued), len(queue.acked),
		events(watches[0]), events(watches[1])))
	fmt.Printf("torture: seconds=%.0f ops=%d faults=%d kills=%d pauses=%d partitions=%d violations=%d porcupine=%s write_availability=%.3f longest_unavailable_ms=%d\n",
		seconds, counts.succeeded, n.total(), n.total("kill"), n.total("pause"),
		n.total("isolate", "one-way", "bridge", "majority"), len(problems), porcupineVerdict,
		availability, longest.Milliseconds())
	if len(problems) > 0 {
		say(fmt.Sprintf("replay the fault schedule with --seed %d", seed))
		return 1
	}
	return 0
}

func readFenced(endpoints []string) (uint64, error) {
	c, err := connect(endpoints)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	value, found, _, err := c.KV().Get(ctx, []byte(fenceKey))
	if err != nil || !found {
		return 0, err
	}
	return parseFenced(value)
}

// writeAvailability: the fraction of register writes that succeeded, and the longest time
// between two successful writes.
func writeAvailability(ops []regOp) (float64, time.Duration) {
	var ok, total int
	var done []int64
	for _, op := range ops {
		if op.kind == opGet {
			continue
		}
		total++
		if op.ret >= 0 {
			ok++
			done = append(done, op.ret)
		}
	}
	if total == 0 {
		return 0, 0
	}
	sort.Slice(done, func(i, j int) bool { return done[i] < done[j] })
	var longest int64
	for i := 1; i < len(done); i++ {
		if gap := done[i] - done[i-1]; gap > longest {
			longest = gap
		}
	}
	return float64(ok) / float64(total), time.Duration(longest)
}

func events(w *watchLog) int {
	n := 0
	for _, s := range w.segments {
		n += len(s)
	}
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "torture: %v\n", err)
	os.Exit(1)
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var open []net.Listener
	defer func() {
		for _, l := range open {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		open = append(open, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
