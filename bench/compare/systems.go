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
)

// system is a 3-member cluster the workloads run against.
type system interface {
	name() string
	// start starts three members with fresh data directories and waits for a leader.
	start() error
	// stop kills every member and waits for them (idempotent).
	stop()
	newClient() (client, error)
}

// client is one connection to a cluster.
type client interface {
	put(key, value []byte) error
	get(key []byte) error
	// lockCycle takes and releases mutex `name` (through a session of this client).
	lockCycle(name string) error
	close()
}

const callTimeout = 10 * time.Second

// processes started for one cluster.
type members struct {
	procs []*exec.Cmd
}

func (m *members) spawn(dir, binary string, args ...string) error {
	log, err := os.Create(filepath.Join(dir, fmt.Sprintf("member%d.log", len(m.procs)+1)))
	if err != nil {
		return err
	}
	cmd := exec.Command(binary, args...)
	cmd.Stdout = log
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	m.procs = append(m.procs, cmd)
	return nil
}

func (m *members) stop() {
	for _, cmd := range m.procs {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	m.procs = nil
}

// ----- accord -----

type accordSystem struct {
	binary    string
	dir       string
	endpoints []string
	members
}

func (s *accordSystem) name() string { return "accord" }

func (s *accordSystem) start() error {
	_ = os.RemoveAll(s.dir)
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	s.endpoints = nil
	for _, p := range ports {
		s.endpoints = append(s.endpoints, fmt.Sprintf("127.0.0.1:%d", p))
	}
	for i := range ports {
		var peers []string
		for j, e := range s.endpoints {
			if j != i {
				peers = append(peers, fmt.Sprintf("%d=%s", j+1, e))
			}
		}
		// The defaults: 50 ms ticks, elections after 10-20 ticks (0.5-1 s).
		err := s.spawn(s.dir, s.binary, "server", "--id", fmt.Sprint(i+1), "--listen", s.endpoints[i],
			"--peers", strings.Join(peers, ","), "--data-dir", filepath.Join(s.dir, fmt.Sprintf("n%d", i+1)))
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

func (s *accordSystem) newClient() (client, error) {
	c, err := accord.Connect(context.Background(), s.endpoints, accord.WithCallTimeout(callTimeout))
	if err != nil {
		return nil, err
	}
	return &accordClient{c: c}, nil
}

type accordClient struct {
	c       *accord.Client
	session *accord.Session
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
	c, err := clientv3.New(clientv3.Config{Endpoints: s.endpoints, DialTimeout: 5 * time.Second})
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

func (s *etcdSystem) newClient() (client, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: s.endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	return &etcdClient{c: c}, nil
}

type etcdClient struct {
	c       *clientv3.Client
	session *concurrency.Session
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
	e.c.Close()
}
