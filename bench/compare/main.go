// Command compare runs the same workloads against a 3-member accord cluster and a 3-member
// etcd cluster on this machine, alternating the two systems round after round, and prints one
// line per workload:
//
//	compare <workload>: accord=<v> etcd=<v> unit=<u> ratio=<accord/etcd> better=<who> floor=<v>
//
// where floor is the physical floor measured in the same run (a loopback round trip plus an
// fdatasync). It writes the raw figures as CSV and a chart as PNG under --out, and
// BENCHMARKS.md next to the repository's README. Every process it starts is stopped before it
// exits, whatever happens.
//
// usage: compare --accord PATH --etcd PATH [--rounds N] [--seconds S] [--out DIR] [--md FILE]
package main

import (
	"context"
	"encoding/csv"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// workload is one measurement: its name, unit, and whether a higher value is better.
type workload struct {
	name         string
	unit         string
	higherBetter bool
	run          func(s system, seconds float64) (float64, error)
}

func workloads() []workload {
	return []workload{
		{"put_latency_p50_1_client", "us", false, func(s system, d float64) (float64, error) {
			return putLatency(s, d, 50)
		}},
		{"put_latency_p99_1_client", "us", false, func(s system, d float64) (float64, error) {
			return putLatency(s, d, 99)
		}},
		{"put_throughput_16_clients", "ops/s", true, func(s system, d float64) (float64, error) {
			return throughput(s, 16, d, func(c client, i int) error { return c.put(key(i), value) })
		}},
		{"put_throughput_128_clients", "ops/s", true, func(s system, d float64) (float64, error) {
			return throughput(s, 128, d, func(c client, i int) error { return c.put(key(i), value) })
		}},
		{"get_latency_p50_1_client", "us", false, func(s system, d float64) (float64, error) {
			return getLatency(s, d)
		}},
		{"get_throughput_16_clients", "ops/s", true, func(s system, d float64) (float64, error) {
			return throughput(s, 16, d, func(c client, i int) error { return c.get(key(i % 1000)) })
		}},
		{"mutex_cycles_uncontended", "cycles/s", true, func(s system, d float64) (float64, error) {
			return mutexCycles(s, 1, d)
		}},
		{"mutex_cycles_10_contenders", "cycles/s", true, func(s system, d float64) (float64, error) {
			return mutexCycles(s, 10, d)
		}},
		{"keepalive_throughput_10000_sessions", "renewals/s", true, func(s system, d float64) (float64, error) {
			return keepaliveThroughput(s, keepaliveSessions, 16, d)
		}},
		{"watch_event_latency_p50", "us", false, func(s system, d float64) (float64, error) {
			return s.watchLatency(d)
		}},
		// Kills the leader's process, measures, starts it again and waits for all three to
		// serve; five times, for the median (the election timeout is random in [1 s, 2 s)).
		{"failover_after_leader_kill", "ms", false, func(s system, _ float64) (float64, error) {
			var samples []float64
			for i := 0; i < failoverKills; i++ {
				took, err := s.failover()
				if err != nil {
					return 0, err
				}
				samples = append(samples, took)
				time.Sleep(3 * time.Second) // the restarted member rejoins and catches up
			}
			return median(samples), nil
		}},
	}
}

// Sessions (etcd: leases) open during the keepalive workload, and their TTL.
const (
	keepaliveSessions = 10_000
	keepaliveTTL      = 10 * time.Second
)

// Leader kills per failover measurement (per system and round).
const failoverKills = 5

// 8-byte keys and 256-byte values, as the issue fixes them.
var value = []byte(strings.Repeat("v", 256))

func key(i int) []byte { return []byte(fmt.Sprintf("k%07d", i%10_000_000)) }

func main() {
	accordBin := flag.String("accord", "", "the accord binary")
	etcdBin := flag.String("etcd", "", "the etcd binary")
	rounds := flag.Int("rounds", 3, "rounds (each runs both systems, alternating which goes first)")
	seconds := flag.Float64("seconds", 3, "seconds each throughput workload runs")
	out := flag.String("out", "bench/results", "directory for the CSV and the PNG")
	md := flag.String("md", "", "write the run as Markdown to this file (BENCHMARKS.md)")
	only := flag.String("only", "", "comma-separated workloads to run (default: all)")
	flag.Parse()
	if *accordBin == "" || *etcdBin == "" || *rounds < 1 || *seconds <= 0 {
		fmt.Fprintln(os.Stderr, "usage: compare --accord PATH --etcd PATH [--rounds N] [--seconds S] [--out DIR] [--md FILE]")
		os.Exit(2)
	}
	scratch, err := os.MkdirTemp("", "accord-compare-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(scratch)
	systems := []system{
		&accordSystem{binary: *accordBin, dir: filepath.Join(scratch, "accord")},
		&etcdSystem{binary: *etcdBin, dir: filepath.Join(scratch, "etcd")},
	}
	// Whatever happens (an error, Ctrl-C), no server is left running.
	stopAll := func() {
		for _, s := range systems {
			s.stop()
		}
	}
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-interrupted
		stopAll()
		os.Exit(130)
	}()
	defer stopAll()

	selected := workloads()
	if *only != "" {
		keep := map[string]bool{}
		for _, name := range strings.Split(*only, ",") {
			keep[strings.TrimSpace(name)] = true
		}
		var chosen []workload
		for _, w := range selected {
			if keep[w.name] {
				chosen = append(chosen, w)
			}
		}
		selected = chosen
	}
	floor, err := measureFloor(scratch)
	if err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "compare: floor (loopback round trip + fdatasync) %.0f us\n", floor)

	// results[system][workload] = one value per round.
	results := map[string]map[string][]float64{}
	var rows [][]string
	for round := 1; round <= *rounds; round++ {
		order := []system{systems[0], systems[1]}
		if round%2 == 0 {
			order = []system{systems[1], systems[0]}
		}
		for _, s := range order {
			fmt.Fprintf(os.Stderr, "compare: round %d/%d, %s: starting 3 members\n", round, *rounds, s.name())
			if err := s.start(); err != nil {
				stopAll()
				fail(fmt.Errorf("%s: %w", s.name(), err))
			}
			for _, w := range selected {
				v, err := w.run(s, *seconds)
				if err != nil {
					stopAll()
					fail(fmt.Errorf("%s %s: %w", s.name(), w.name, err))
				}
				fmt.Fprintf(os.Stderr, "compare: round %d %s %s = %.1f %s\n", round, s.name(), w.name, v, w.unit)
				if results[s.name()] == nil {
					results[s.name()] = map[string][]float64{}
				}
				results[s.name()][w.name] = append(results[s.name()][w.name], v)
				rows = append(rows, []string{strconv.Itoa(round), s.name(), w.name, strconv.FormatFloat(v, 'f', 1, 64), w.unit})
			}
			s.stop()
		}
	}

	var lines, names []string
	var ratios []float64
	for _, w := range selected {
		a, e := median(results["accord"][w.name]), median(results["etcd"][w.name])
		ratio := a / e
		better := "etcd"
		if (w.higherBetter && a > e) || (!w.higherBetter && a < e) {
			better = "accord"
		}
		floorValue := floor // µs
		switch {
		case w.higherBetter:
			floorValue = 1e6 / floor // one client's ceiling: one operation per floor
		case w.unit == "ms":
			floorValue = floor / 1000
		}
		line := fmt.Sprintf("compare %s: accord=%.1f etcd=%.1f unit=%s ratio=%.2f better=%s floor=%.1f",
			w.name, a, e, w.unit, ratio, better, floorValue)
		lines = append(lines, line)
		fmt.Println(line)
		names = append(names, w.name)
		if w.higherBetter {
			ratios = append(ratios, ratio)
		} else {
			ratios = append(ratios, 1/ratio)
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err)
	}
	if err := writeCSV(filepath.Join(*out, "compare.csv"), rows); err != nil {
		fail(err)
	}
	if err := writeChart(filepath.Join(*out, "compare.png"), names, ratios); err != nil {
		fail(err)
	}
	if *md != "" {
		if err := writeMarkdown(*md, lines, *rounds, *seconds, floor); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "compare: %v\n", err)
	os.Exit(1)
}

func median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	sorted := append([]float64(nil), values...)
	sort.Float64s(sorted)
	return sorted[len(sorted)/2]
}

func percentile(samples []time.Duration, p int) float64 {
	if len(samples) == 0 {
		return 0
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	i := len(samples) * p / 100
	if i >= len(samples) {
		i = len(samples) - 1
	}
	return float64(samples[i].Microseconds())
}

// putLatency: one client writing sequentially for about a second; the p-th percentile in µs.
func putLatency(s system, seconds float64, p int) (float64, error) {
	c, err := s.newClient()
	if err != nil {
		return 0, err
	}
	defer c.close()
	var samples []time.Duration
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	for i := 0; time.Now().Before(deadline); i++ {
		start := time.Now()
		if err := c.put(key(i), value); err != nil {
			return 0, err
		}
		samples = append(samples, time.Since(start))
	}
	return percentile(samples, p), nil
}

func getLatency(s system, seconds float64) (float64, error) {
	c, err := s.newClient()
	if err != nil {
		return 0, err
	}
	defer c.close()
	if err := c.put(key(0), value); err != nil {
		return 0, err
	}
	var samples []time.Duration
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	for time.Now().Before(deadline) {
		start := time.Now()
		if err := c.get(key(0)); err != nil {
			return 0, err
		}
		samples = append(samples, time.Since(start))
	}
	return percentile(samples, 50), nil
}

// throughput: `clients` clients (one connection each) doing `op` back to back for the
// duration; operations per second.
func throughput(s system, clients int, seconds float64, op func(client, int) error) (float64, error) {
	conns, err := openClients(s, clients)
	defer closeClients(conns)
	if err != nil {
		return 0, err
	}
	rate, _, err := runFor(conns, seconds, op)
	return rate, err
}

func openClients(s system, n int) ([]client, error) {
	var conns []client
	for i := 0; i < n; i++ {
		c, err := s.newClient()
		if err != nil {
			return conns, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// closeClients closes the clients (and their sessions) all at once.
func closeClients(conns []client) {
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c client) {
			defer wg.Done()
			c.close()
		}(c)
	}
	wg.Wait()
}

// runFor runs `op` back to back on every client at once for the duration (the client's
// w-th call gets i = w, w + len(conns), ...); operations per second, all clients together.
func runFor(conns []client, seconds float64, op func(client, int) error) (float64, int, error) {
	clients := len(conns)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total int
	var firstErr error
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	start := time.Now()
	for w, c := range conns {
		wg.Add(1)
		go func(w int, c client) {
			defer wg.Done()
			n := 0
			for i := w; time.Now().Before(deadline); i += clients {
				if err := op(c, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				n++
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}(w, c)
	}
	wg.Wait()
	if firstErr != nil {
		return 0, 0, firstErr
	}
	return float64(total) / time.Since(start).Seconds(), total, nil
}

// keepaliveThroughput: `clients` clients open `sessions` sessions between them (each system's
// session type over its lease or session, kept alive in the background by its client
// library), then each client renews its own sessions one after another, as fast as the
// cluster acknowledges, for the duration; renewals per second. Every session must still be
// alive at the end.
func keepaliveThroughput(s system, sessions, clients int, seconds float64) (float64, error) {
	conns, err := openClients(s, clients)
	defer closeClients(conns)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	errs := make([]error, clients)
	started := time.Now()
	for w, c := range conns {
		wg.Add(1)
		go func(w int, c client) {
			defer wg.Done()
			errs[w] = c.openSessions(sessions/clients, keepaliveTTL)
		}(w, c)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	fmt.Fprintf(os.Stderr, "compare: %d sessions opened in %.1f s\n", sessions, time.Since(started).Seconds())
	rate, _, err := runFor(conns, seconds, func(c client, i int) error { return c.renew(i / clients) })
	if err != nil {
		return 0, err
	}
	for _, c := range conns {
		if err := c.sessionsAlive(); err != nil {
			return 0, err
		}
	}
	return rate, nil
}

// mutexCycles: `clients` clients, each with a session, taking and releasing the same mutex
// for the duration; acquire + release cycles per second, all clients together. Profiled
// (see `profiled`).
func mutexCycles(s system, clients int, seconds float64) (float64, error) {
	conns, err := openClients(s, clients)
	defer closeClients(conns)
	if err != nil {
		return 0, err
	}
	cycle := func(c client, _ int) error { return c.lockCycle("bench-mutex") }
	for _, c := range conns {
		if err := cycle(c, 0); err != nil { // opens the session outside the measurement
			return 0, err
		}
	}
	return profiled(s, fmt.Sprintf("mutex_cycles_%d_clients", clients), func() (float64, int, error) {
		return runFor(conns, seconds, cycle)
	})
}

// measureFloor: the median loopback TCP round trip plus the median fdatasync of a 256-byte
// append, in µs, on this machine now.
func measureFloor(dir string) (float64, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer listener.Close()
	go func() {
		conn, err := listener.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		buf := make([]byte, 64)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			if _, err := conn.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	conn, err := net.Dial("tcp", listener.Addr().String())
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var rtts []time.Duration
	buf := make([]byte, 64)
	for i := 0; i < 2000; i++ {
		start := time.Now()
		if _, err := conn.Write(buf[:8]); err != nil {
			return 0, err
		}
		if _, err := conn.Read(buf); err != nil {
			return 0, err
		}
		rtts = append(rtts, time.Since(start))
	}
	file, err := os.CreateTemp(dir, "fsync-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(file.Name())
	defer file.Close()
	var syncs []time.Duration
	record := make([]byte, 256)
	for i := 0; i < 200; i++ {
		start := time.Now()
		if _, err := file.Write(record); err != nil {
			return 0, err
		}
		if err := syscall.Fdatasync(int(file.Fd())); err != nil {
			return 0, err
		}
		syncs = append(syncs, time.Since(start))
	}
	return percentile(rtts, 50) + percentile(syncs, 50), nil
}

func writeCSV(path string, rows [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := csv.NewWriter(f)
	if err := w.Write([]string{"round", "system", "workload", "value", "unit"}); err != nil {
		return err
	}
	if err := w.WriteAll(rows); err != nil {
		return err
	}
	return f.Sync()
}

func writeMarkdown(path string, lines []string, rounds int, seconds, floor float64) error {
	host, _ := os.Hostname()
	var b strings.Builder
	b.WriteString("# Benchmarks: accord beside etcd\n\n")
	b.WriteString("The latest run of `make bench-compare`: a 3-member accord cluster and a 3-member etcd\n")
	b.WriteString("cluster on loopback, on the same machine, fsync on, the same workloads from one Go\n")
	b.WriteString("harness (`bench/compare`), alternating the two systems round after round. Each value is\n")
	b.WriteString("the median of the rounds; `floor` is a loopback round trip plus an fdatasync measured in\n")
	b.WriteString("the same run (for throughputs: one client's ceiling at one operation per floor).\n\n")
	fmt.Fprintf(&b, "- date: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "- machine: %s, %d CPUs, %s/%s\n", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "- rounds: %d; %g s per throughput workload; floor %.0f us\n", rounds, seconds, floor)
	b.WriteString("- command: `make bench-compare`\n\n```\n")
	for _, line := range lines {
		b.WriteString(line + "\n")
	}
	b.WriteString("```\n\nWhere the mutex cycles' time went, per round, from the servers' own metrics (`op_us`:\n")
	b.WriteString("wall time per cycle; `fsync_us`: mean append + fdatasync of the log; `fsyncs_per_op_all_members`:\n")
	b.WriteString("durable writes per cycle, all members together; `leader_write_us`: accord's leader, from a\n")
	b.WriteString("write's arrival to its answer):\n\n```\n")
	for _, line := range profiles {
		b.WriteString(line + "\n")
	}
	b.WriteString("```\n\nRaw figures per round: `bench/results/compare.csv`; chart: `bench/results/compare.png`\n")
	b.WriteString("(one row per workload: the factor by which the better system wins, on a log scale).\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitFor polls ready until it succeeds or the time is up.
func waitFor(what string, timeout time.Duration, ready func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		last = ready(ctx)
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v: %v", what, timeout, last)
}
