package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// scrape sums, over every member, the Prometheus samples named in `names` (histogram _sum
// and _count series, counters), read from each member's /metrics page.
func scrape(urls []string, names []string) (map[string]float64, error) {
	totals := map[string]float64{}
	client := http.Client{Timeout: 5 * time.Second}
	for _, url := range urls {
		response, err := client.Get(url)
		if err != nil {
			return nil, err
		}
		scanner := bufio.NewScanner(response.Body)
		scanner.Buffer(make([]byte, 64*1024), 1024*1024)
		for scanner.Scan() {
			line := scanner.Text()
			for _, name := range names {
				if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
					continue
				}
				fields := strings.Fields(line)
				if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil {
					totals[name] += v
				}
			}
		}
		response.Body.Close()
		if err := scanner.Err(); err != nil {
			return nil, err
		}
	}
	return totals, nil
}

// profiled runs one workload and prints where its time went, from the servers' own
// metrics: the mean durable write (append + fdatasync) and how many there were per
// operation, and (accord) the leader's time from a write's arrival to its answer.
func profiled(s system, name string, run func() (float64, int, error)) (float64, error) {
	urls, fsync, leaderWrite := s.metricsPages()
	names := []string{fsync + "_sum", fsync + "_count"}
	if leaderWrite != "" {
		names = append(names, leaderWrite+"_sum", leaderWrite+"_count")
	}
	before, err := scrape(urls, names)
	if err != nil {
		return 0, err
	}
	started := time.Now()
	rate, ops, err := run()
	if err != nil {
		return 0, err
	}
	elapsed := time.Since(started)
	after, err := scrape(urls, names)
	if err != nil {
		return 0, err
	}
	delta := func(n string) float64 { return after[n] - before[n] }
	perOp := float64(elapsed.Microseconds()) / float64(ops)
	var b strings.Builder
	fmt.Fprintf(&b, "profile %s %s: ops=%d op_us=%.0f", s.name(), name, ops, perOp)
	fsyncSum, fsyncCount := names[0], names[1]
	if c := delta(fsyncCount); c > 0 {
		fmt.Fprintf(&b, " fsync_us=%.0f fsyncs_per_op_all_members=%.2f", delta(fsyncSum)/c*1e6, c/float64(ops))
	}
	if leaderWrite != "" {
		leaderSum, leaderCount := names[2], names[3]
		if c := delta(leaderCount); c > 0 {
			fmt.Fprintf(&b, " leader_write_us=%.0f writes_per_op=%.2f", delta(leaderSum)/c*1e6, c/float64(ops))
		}
	}
	fmt.Println(b.String())
	profiles = append(profiles, b.String())
	return rate, nil
}

// profiles printed during the run, for BENCHMARKS.md.
var profiles []string
