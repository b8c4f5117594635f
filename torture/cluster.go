package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// member is one `accord server` process and how to start it again.
type member struct {
	id      int
	listen  string
	dataDir string
	argv    []string
	log     *os.File

	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool // SIGSTOPped
}

// cluster is the members, and the proxies every peer link goes through.
type cluster struct {
	binary  string
	dir     string
	members []*member
	proxies map[[2]int]*proxy // [from, to] (1-based ids)
	mu      sync.Mutex
}

// startCluster starts n members on loopback; member i reaches member j through proxy
// (i, j). Every member runs with failpoints on (the nemesis slows or fails its disk).
func startCluster(binary, dir string, n int, tickMs, electionTicks int) (*cluster, error) {
	c := &cluster{binary: binary, dir: dir, proxies: map[[2]int]*proxy{}}
	ports, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		c.members = append(c.members, &member{
			id:      i,
			listen:  fmt.Sprintf("127.0.0.1:%d", ports[i-1]),
			dataDir: filepath.Join(dir, fmt.Sprintf("n%d", i)),
		})
	}
	for _, from := range c.members {
		for _, to := range c.members {
			if from.id == to.id {
				continue
			}
			p, err := startProxy(from.id, to.id, to.listen)
			if err != nil {
				c.stop()
				return nil, err
			}
			c.proxies[[2]int{from.id, to.id}] = p
		}
	}
	for _, m := range c.members {
		var peers []string
		for _, other := range c.members {
			if other.id != m.id {
				peers = append(peers, fmt.Sprintf("%d=%s", other.id, c.proxies[[2]int{m.id, other.id}].address()))
			}
		}
		m.argv = []string{binary, "server", "--plaintext", "--id", strconv.Itoa(m.id), "--listen", m.listen,
			"--peers", strings.Join(peers, ","), "--data-dir", m.dataDir,
			"--tick-ms", strconv.Itoa(tickMs), "--election-ticks", strconv.Itoa(electionTicks)}
		if err := os.MkdirAll(m.dataDir, 0o700); err != nil {
			c.stop()
			return nil, err
		}
		if err := c.start(m); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

func (c *cluster) endpoints() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.listen)
	}
	return out
}

// start starts member m's process (again) on its data directory.
func (c *cluster) start(m *member) error {
	if m.log == nil {
		f, err := os.OpenFile(filepath.Join(c.dir, fmt.Sprintf("member%d.log", m.id)),
			os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		m.log = f
	}
	cmd := exec.Command(m.argv[0], m.argv[1:]...)
	cmd.Env = append(os.Environ(), "ACCORD_FAILPOINTS=1")
	cmd.Stdout = m.log
	cmd.Stderr = m.log
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	m.cmd, m.exited, m.stopped = cmd, exited, false
	return nil
}

// running: whether m's process is alive (it may have stopped itself, on an injected disk
// failure).
func (m *member) running() bool {
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to m and waits for it to die.
func (c *cluster) kill(m *member) {
	if m.running() {
		if m.stopped {
			_ = m.cmd.Process.Signal(syscall.SIGCONT)
		}
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
	m.stopped = false
}

// pause (SIGSTOP) and resume (SIGCONT) m.
func (c *cluster) pause(m *member) {
	if m.running() {
		_ = m.cmd.Process.Signal(syscall.SIGSTOP)
		m.stopped = true
	}
}

func (c *cluster) resume(m *member) {
	if m.running() && m.stopped {
		_ = m.cmd.Process.Signal(syscall.SIGCONT)
	}
	m.stopped = false
}

// setDiskDelay makes m's durable writes take `ms` longer (0: normal again).
func (c *cluster) setDiskDelay(m *member, ms int) error {
	path := filepath.Join(m.dataDir, "failpoint-fsync-delay-ms")
	if ms == 0 {
		err := os.Remove(path)
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	return os.WriteFile(path, []byte(strconv.Itoa(ms)), 0o600)
}

// failDisk makes m's next durable write fail (m stops itself).
func (c *cluster) failDisk(m *member) error {
	return os.WriteFile(filepath.Join(m.dataDir, "failpoint-fsync-fail"), nil, 0o600)
}

// cut cuts (or heals) the link from→to.
func (c *cluster) cut(from, to int, cut bool) {
	if p := c.proxies[[2]int{from, to}]; p != nil {
		p.setCut(cut)
	}
}

// heal: every link up, every member running at normal disk speed.
func (c *cluster) heal() error {
	for _, p := range c.proxies {
		p.setCut(false)
	}
	for _, m := range c.members {
		if err := c.setDiskDelay(m, 0); err != nil {
			return err
		}
		_ = os.Remove(filepath.Join(m.dataDir, "failpoint-fsync-fail"))
		c.resume(m)
		if !m.running() {
			if err := c.start(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// stop kills every member and closes every proxy (idempotent).
func (c *cluster) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.members {
		c.kill(m)
		if m.log != nil {
			m.log.Close()
			m.log = nil
		}
	}
	for _, p := range c.proxies {
		p.close()
	}
}

// waitExit: whether m exited by itself within d (after an injected disk failure).
func (m *member) waitExit(d time.Duration) bool {
	if m.exited == nil {
		return true
	}
	select {
	case <-m.exited:
		return true
	case <-time.After(d):
		return false
	}
}
