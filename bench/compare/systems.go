package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	accord "github.com/accord-engine/accord/bindings/go"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// system is a 3-member cluster the workloads run against.
type system interface {
	name() string
	// start starts three members with fresh data directories and waits for a leader.
	start() error
	// stop kills every member and waits for them (idempotent).
	stop()
	newClient() (client, error)
	// watchLatency: one writer puts keys one at a time while a watcher of their prefix
	// receives them; the median time from a put's start to its event, in µs.
	watchLatency(seconds float64) (float64, error)
	// failover kills the leader's process and returns the milliseconds until a write
	// succeeds again.
	failover() (float64, error)
	// metricsPages: every member's Prometheus page, the histogram of durable log writes
	// (append + fdatasync), and the leader's histogram of client writes ("" if none).
	metricsPages() (pages []string, fsync, leaderWrite string)
}

// client is one connection to a cluster.
type client interface {
	put(key, value []byte) error
	get(key []byte) error
	// lockCycle takes and releases mutex `name` (through a session of this client).
	lockCycle(name string) error
	// openSessions opens n sessions (etcd: concurrency sessions, each over a lease) of the
	// given TTL, kept alive by the client library; renew(i) renews the (i mod n)-th now and
	// returns once the cluster acknowledged it; sessionsAlive fails unless all still are.
	openSessions(n int, ttl time.Duration) error
	renew(i int) error
	sessionsAlive() error
	close()
}

const callTimeout = 10 * time.Second

// processes started for one cluster, and how to start each again.
type members struct {
	procs []*exec.Cmd
	argv  [][]string
}

func (m *members) spawn(dir, binary string, args ...string) error {
	cmd, err := m.launch(dir, len(m.procs), append([]string{binary}, args...))
	if err != nil {
		return err
	}
	m.procs = append(m.procs, cmd)
	m.argv = append(m.argv, append([]string{binary}, args...))
	return nil
}

func (m *members) launch(dir string, i int, argv []string) (*exec.Cmd, error) {
	log, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("member%d.log", i+1)),
		os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = log
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	return cmd, nil
}

// restart starts member `i` (0-based) again after a kill, on its data directory.
func (m *members) restart(dir string, i int) error {
	cmd, err := m.launch(dir, i, m.argv[i])
	if err != nil {
		return err
	}
	m.procs[i] = cmd
	return nil
}

// kill kills member `i` (0-based) and waits for it.
func (m *members) kill(i int) {
	if i < len(m.procs) {
		_ = m.procs[i].Process.Kill()
		_ = m.procs[i].Wait()
	}
}

// killAndTime kills member `victim` (0-based), returns the milliseconds until `write`
// succeeds again, and starts the member again on its data directory.
func (m *members) killAndTime(dir string, victim int, write func(ctx context.Context) error) (float64, error) {
	killed := time.Now()
	m.kill(victim)
	took, err := timeUntilWrite(killed, write)
	if err != nil {
		return 0, err
	}
	return took, m.restart(dir, victim)
}

// timeUntilWrite retries `write` until it succeeds; the milliseconds since `since`.
func timeUntilWrite(since time.Time, write func(ctx context.Context) error) (float64, error) {
	deadline := since.Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := write(ctx)
		cancel()
		if err == nil {
			return float64(time.Since(since).Microseconds()) / 1000, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("no write succeeded within a minute of the leader's death")
}

func (m *members) stop() {
	for _, cmd := range m.procs {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	m.procs = nil
	m.argv = nil
}

// ----- accord -----

type accordSystem struct {
	binary    string
	dir       string
	endpoints []string
	metrics   []string
	members
}

func (s *accordSystem) metricsPages() ([]string, string, string) {
	return s.metrics, "accord_fsync_duration_seconds", "accord_proposal_duration_seconds"
}

func (s *accordSystem) name() string { return "accord" }

func (s *accordSystem) start() error {
	_ = os.RemoveAll(s.dir)
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	ports, err := freePorts(6)
	if err != nil {
		return err
	}
	s.endpoints, s.metrics = nil, nil
	for i, p := range ports[:3] {
		s.endpoints = append(s.endpoints, fmt.Sprintf("127.0.0.1:%d", p))
		s.metrics = append(s.metrics, fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[3+i]))
	}
	for i := range s.endpoints {
		var peers []string
		for j, e := range s.endpoints {
			if j != i {
				peers = append(peers, fmt.Sprintf("%d=%s", j+1, e))
			}
		}
		// 50 ms ticks and elections after 20-40 ticks: the same election timeout as etcd's
		// default (1 s, randomized up to 2 s), so that failover times compare.
		err := s.spawn(s.dir, s.binary, "server", "--plaintext", "--id", fmt.Sprint(i+1), "--listen", s.endpoints[i],
			"--peers", strings.Join(peers, ","), "--data-dir", filepath.Join(s.dir, fmt.Sprintf("n%d", i+1)),
			"--tick-ms", "50", "--election-ticks", "20",
			"--metrics", strings.TrimSuffix(strings.TrimPrefix(s.metrics[i], "http://"), "/metrics"))
		if err != nil {
			s.stop()
			return err
		}
	}
	c, err := accord.Connect(context.Background(), s.endpoints)
	if err != nil {
		s.stop()
		return err
	}
	defer c.Close()
	return waitFor("accord", 30*time.Second, func(ctx context.Context) error {
		_, err := c.KV().Put(ctx, []byte("ready"), []byte("1"))
		return err
	})
}

// connect opens a client of the cluster.
func (s *accordSystem) connect() (*accord.Client, error) {
	return accord.Connect(context.Background(), s.endpoints, accord.WithCallTimeout(callTimeout))
}

func (s *accordSystem) newClient() (client, error) {
	c, err := s.connect()
	if err != nil {
		return nil, err
	}
	return &accordClient{c: c}, nil
}

func (s *accordSystem) watchLatency(seconds float64) (float64, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	writer, err := s.connect()
	if err != nil {
		return 0, err
	}
	defer writer.Close()
	watcher, err := s.connect()
	if err != nil {
		return 0, err
	}
	defer watcher.Close()
	revision, err := writer.KV().Put(ctx, []byte("w/start"), value)
	if err != nil {
		return 0, err
	}
	events, failed, err := watcher.KV().Watch(ctx, []byte("w/"), revision+1)
	if err != nil {
		return 0, err
	}
	return measureWatch(seconds, func(i int) error {
		_, err := writer.KV().Put(ctx, append([]byte("w/"), key(i)...), value)
		return err
	}, func() error {
		select {
		case _, ok := <-events:
			if !ok {
				return fmt.Errorf("the watch ended: %v", <-failed)
			}
			return nil
		case <-time.After(callTimeout):
			return fmt.Errorf("no event within %v", callTimeout)
		}
	})
}

// measureWatch: put, then wait for its event, one at a time; the median in µs.
func measureWatch(seconds float64, put func(int) error, next func() error) (float64, error) {
	var samples []time.Duration
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	for i := 0; time.Now().Before(deadline); i++ {
		start := time.Now()
		if err := put(i); err != nil {
			return 0, err
		}
		if err := next(); err != nil {
			return 0, err
		}
		samples = append(samples, time.Since(start))
	}
	return percentile(samples, 50), nil
}

func (s *accordSystem) failover() (float64, error) {
	c, err := s.connect()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	status, err := c.Status(context.Background())
	if err != nil {
		return 0, err
	}
	if status.Leader == 0 {
		return 0, fmt.Errorf("no leader known")
	}
	return s.killAndTime(s.dir, int(status.Leader)-1, func(ctx context.Context) error {
		_, err := c.KV().Put(ctx, []byte("failover"), value)
		return err
	})
}

type accordClient struct {
	c        *accord.Client
	session  *accord.Session
	sessions []*accord.Session
}

func (a *accordClient) openSessions(n int, ttl time.Duration) error {
	for i := 0; i < n; i++ {
		s, err := a.c.NewSession(context.Background(), accord.WithTTL(ttl))
		if err != nil {
			return err
		}
		a.sessions = append(a.sessions, s)
	}
	return nil
}

func (a *accordClient) renew(i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return a.sessions[i%len(a.sessions)].KeepAliveOnce(ctx)
}

func (a *accordClient) sessionsAlive() error {
	for _, s := range a.sessions {
		if state, err := s.State(); err != nil || state != accord.SessionHeld {
			return fmt.Errorf("a session is no longer held: %v %v", state, err)
		}
	}
	return nil
}

func (a *accordClient) put(key, value []byte) error {
	_, err := a.c.KV().Put(context.Background(), key, value)
	return err
}

func (a *accordClient) get(key []byte) error {
	_, _, _, err := a.c.KV().Get(context.Background(), key)
	return err
}

func (a *accordClient) lockCycle(name string) error {
	ctx := context.Background()
	if a.session == nil {
		s, err := a.c.NewSession(ctx, accord.WithTTL(10*time.Second))
		if err != nil {
			return err
		}
		a.session = s
	}
	m := a.session.Mutex(name)
	if _, err := m.Lock(ctx); err != nil {
		return err
	}
	return m.Unlock(ctx)
}

func (a *accordClient) close() {
	if a.session != nil {
		a.session.Close()
	}
	for _, s := range a.sessions {
		s.Close()
	}
	a.c.Close()
}

// ----- etcd -----

type etcdSystem struct {
	binary    string
	dir       string
	endpoints []string
	members
}

func (s *etcdSystem) name() string { return "etcd" }

func (s *etcdSystem) metricsPages() ([]string, string, string) {
	var pages []string
	for _, e := range s.endpoints {
		pages = append(pages, e+"/metrics")
	}
	return pages, "etcd_disk_wal_fsync_duration_seconds", ""
}

func (s *etcdSystem) start() error {
	_ = os.RemoveAll(s.dir)
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	ports, err := freePorts(6)
	if err != nil {
		return err
	}
	var initial []string
	for i := 0; i < 3; i++ {
		initial = append(initial, fmt.Sprintf("n%d=http://127.0.0.1:%d", i+1, ports[3+i]))
	}
	s.endpoints = nil
	for i := 0; i < 3; i++ {
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[i])
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[3+i])
		s.endpoints = append(s.endpoints, client)
		// etcd's defaults too: heartbeats every 100 ms, elections after 1 s; fsync on.
		err := s.spawn(s.dir, s.binary,
			"--name", fmt.Sprintf("n%d", i+1),
			"--data-dir", filepath.Join(s.dir, fmt.Sprintf("n%d", i+1)),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", "bench",
			"--log-level", "error")
		if err != nil {
			s.stop()
			return err
		}
	}
	c, err := s.connect()
	if err != nil {
		s.stop()
		return err
	}
	defer c.Close()
	return waitFor("etcd", 30*time.Second, func(ctx context.Context) error {
		_, err := c.Put(ctx, "ready", "1")
		return err
	})
}

// connect opens a client of the cluster (its own logging silenced).
func (s *etcdSystem) connect() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: s.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

func (s *etcdSystem) newClient() (client, error) {
	c, err := s.connect()
	if err != nil {
		return nil, err
	}
	return &etcdClient{c: c}, nil
}

func (s *etcdSystem) watchLatency(seconds float64) (float64, error) {
	writer, err := s.connect()
	if err != nil {
		return 0, err
	}
	defer writer.Close()
	watcher, err := s.connect()
	if err != nil {
		return 0, err
	}
	defer watcher.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	response, err := writer.Put(ctx, "w/start", string(value))
	if err != nil {
		return 0, err
	}
	channel := watcher.Watch(ctx, "w/", clientv3.WithPrefix(), clientv3.WithRev(response.Header.Revision+1))
	var pending int
	return measureWatch(seconds, func(i int) error {
		_, err := writer.Put(ctx, "w/"+string(key(i)), string(value))
		return err
	}, func() error {
		// One put is one event; a response may carry several.
		for pending == 0 {
			select {
			case r, ok := <-channel:
				if !ok || r.Err() != nil {
					return fmt.Errorf("the watch ended: %v", r.Err())
				}
				pending += len(r.Events)
			case <-time.After(callTimeout):
				return fmt.Errorf("no event within %v", callTimeout)
			}
		}
		pending--
		return nil
	})
}

func (s *etcdSystem) failover() (float64, error) {
	c, err := s.connect()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	leader := -1
	for i, endpoint := range s.endpoints {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		status, err := c.Status(ctx, endpoint)
		cancel()
		if err == nil && status.Header.MemberId == status.Leader {
			leader = i
		}
	}
	if leader < 0 {
		return 0, fmt.Errorf("no leader found")
	}
	return s.killAndTime(s.dir, leader, func(ctx context.Context) error {
		_, err := c.Put(ctx, "failover", string(value))
		return err
	})
}

type etcdClient struct {
	c        *clientv3.Client
	session  *concurrency.Session
	sessions []*concurrency.Session
}

func (e *etcdClient) openSessions(n int, ttl time.Duration) error {
	for i := 0; i < n; i++ {
		s, err := concurrency.NewSession(e.c, concurrency.WithTTL(int(ttl.Seconds())))
		if err != nil {
			return err
		}
		e.sessions = append(e.sessions, s)
	}
	return nil
}

// renew: etcd's one-shot renewal of a lease (what its own benchmark tool measures).
func (e *etcdClient) renew(i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := e.c.KeepAliveOnce(ctx, e.sessions[i%len(e.sessions)].Lease())
	return err
}

func (e *etcdClient) sessionsAlive() error {
	for _, s := range e.sessions {
		select {
		case <-s.Done():
			return fmt.Errorf("a session's lease expired")
		default:
		}
	}
	return nil
}

func (e *etcdClient) put(key, value []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := e.c.Put(ctx, string(key), string(value))
	return err
}

func (e *etcdClient) get(key []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := e.c.Get(ctx, string(key))
	return err
}

func (e *etcdClient) lockCycle(name string) error {
	if e.session == nil {
		s, err := concurrency.NewSession(e.c, concurrency.WithTTL(10))
		if err != nil {
			return err
		}
		e.session = s
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	m := concurrency.NewMutex(e.session, "/bench-lock/"+name)
	if err := m.Lock(ctx); err != nil {
		return err
	}
	return m.Unlock(ctx)
}

func (e *etcdClient) close() {
	if e.session != nil {
		e.session.Close()
	}
	for _, s := range e.sessions {
		s.Close()
	}
	e.c.Close()
}
