package main

import (
	"io"
	"net"
	"sync"
)

// proxy forwards one directed peer link (member `from` sending to member `to`): `from` is
// told that `to` listens on the proxy's address. A cut proxy closes the connections it
// carries and refuses new ones, so nothing `from` sends reaches `to` (accord sends to a peer
// only on connections it opened itself, so cutting from→to leaves to→from untouched: that
// is how one-way partitions are made).
type proxy struct {
	from, to int
	target   string
	listener net.Listener

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

func startProxy(from, to int, target string) (*proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{from: from, to: to, target: target, listener: l, conns: map[net.Conn]struct{}{}}
	go p.accept()
	return p, nil
}

func (p *proxy) address() string { return p.listener.Addr().String() }

func (p *proxy) accept() {
	for {
		in, err := p.listener.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		cut := p.cut
		if !cut {
			p.conns[in] = struct{}{}
		}
		p.mu.Unlock()
		if cut {
			in.Close()
			continue
		}
		go p.forward(in)
	}
}

func (p *proxy) forward(in net.Conn) {
	out, err := net.Dial("tcp", p.target)
	if err != nil {
		p.drop(in)
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		out.Close()
		p.drop(in)
		return
	}
	p.conns[out] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	p.drop(in)
	p.drop(out)
}

func (p *proxy) drop(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// setCut cuts the link (closing what it carries) or heals it.
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	p.cut = cut
	var open []net.Conn
	if cut {
		for c := range p.conns {
			open = append(open, c)
		}
	}
	p.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

func (p *proxy) close() {
	p.listener.Close()
	p.setCut(true)
}
