package accord

/*
#include <stdlib.h>
#include "accord.h"
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// SessionState is how sure this process is that a session is alive.
type SessionState uint32

// Session states.
const (
	SessionHeld    SessionState = SessionState(C.ACCORD_SESSION_STATE_HELD)
	SessionSuspect SessionState = SessionState(C.ACCORD_SESSION_STATE_SUSPECT)
	SessionLost    SessionState = SessionState(C.ACCORD_SESSION_STATE_LOST)
)

// String names the state ("held", "suspect", "lost").
func (s SessionState) String() string {
	return C.GoString(C.accord_session_state_str(C.accord_session_state(s)))
}

type sessionOptions struct{ ttl time.Duration }

// SessionOption configures NewSession.
type SessionOption func(*sessionOptions)

// WithTTL sets the session's TTL (1 s to a day; default 10 s).
func WithTTL(ttl time.Duration) SessionOption { return func(o *sessionOptions) { o.ttl = ttl } }

// Session is the liveness everything it holds depends on: locks, leadership, group
// presence, queue claims. Kept alive by a thread of the library. Close it to release
// everything at once.
type Session struct {
	mu  sync.RWMutex
	ptr *C.accord_session
	// client is the client the session was opened from: the session issues its commands
	// through that client's connection, so the client must not be finalized (closed) while
	// the session is in use.
	client *Client
	// done is closed once the session is lost or closed (made by Done's first call).
	doneOnce sync.Once
	done     chan struct{}
}

// NewSession opens a session on the client's cluster.
func (c *Client) NewSession(ctx context.Context, opts ...SessionOption) (*Session, error) {
	o := sessionOptions{ttl: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	ttl := o.ttl.Milliseconds()
	if ttl < 0 || ttl > 0xffffffff {
		return nil, &Error{Code: uint32(C.ACCORD_ERR_INVALID_ARGUMENT), Message: "TTL out of range", kind: ErrInvalidArgument}
	}
	var ptr *C.accord_session
	err := c.use(func(p *C.accord_client) error {
		return cancellable(ctx, func() { C.accord_client_cancel(p) }, func() C.accord_result {
			return C.accord_session_create(p, C.uint32_t(ttl), &ptr)
		})
	})
	if err != nil {
		return nil, err
	}
	s := &Session{ptr: ptr, client: c}
	runtime.SetFinalizer(s, func(s *Session) { s.free() })
	return s, nil
}

func (s *Session) use(f func(*C.accord_session) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ptr == nil {
		return &Error{Code: uint32(C.ACCORD_ERR_SHUTDOWN), Message: "the session was closed", kind: ErrShutdown}
	}
	err := f(s.ptr)
	runtime.KeepAlive(s)
	return err
}

// ID is the session's id.
func (s *Session) ID() (uint64, error) {
	var id C.uint64_t
	err := s.use(func(p *C.accord_session) error {
		return call(func() C.accord_result { return C.accord_session_id(p, &id) })
	})
	return uint64(id), err
}

// State is the session's state now (by the safety clock); SessionLost once closed.
func (s *Session) State() (SessionState, error) {
	s.mu.RLock()
	closed := s.ptr == nil
	s.mu.RUnlock()
	if closed {
		return SessionLost, nil
	}
	var state C.accord_session_state
	err := s.use(func(p *C.accord_session) error {
		return call(func() C.accord_result { return C.accord_session_status(p, &state) })
	})
	return SessionState(state), err
}

// Done returns a channel closed once the session is lost (expired, or no longer provably
// alive by the safety clock) or closed: from then on nothing it held may be relied on. The
// goroutine behind it keeps the session referenced until then, so close a session whose Done
// was asked for rather than leaving it to its finalizer.
func (s *Session) Done() <-chan struct{} {
	s.doneOnce.Do(func() {
		s.done = make(chan struct{})
		go func() {
			defer close(s.done)
			// Polls in short waits so that Close, which takes the handle, is never held up
			// for longer than one of them.
			state := C.accord_session_state(SessionHeld)
			for state != C.ACCORD_SESSION_STATE_LOST {
				err := s.use(func(p *C.accord_session) error {
					return call(func() C.accord_result {
						return C.accord_session_wait_change(p, state, 100, &state)
					})
				})
				if err != nil {
					return
				}
			}
		}()
	})
	return s.done
}

// KeepAliveOnce renews the session now instead of at its next keepalive (the library sends
// one every TTL/3 by itself) and returns once the cluster acknowledged it, as etcd's
// Lease.KeepAliveOnce. Renewals asked for at the same time by several sessions travel in one
// request. It fails with ErrSessionLost once the session is lost.
func (s *Session) KeepAliveOnce(ctx context.Context) error {
	return s.use(func(p *C.accord_session) error {
		return cancellable(ctx, func() { C.accord_session_cancel(p) }, func() C.accord_result {
			ms := timeoutMs(ctx, 10*time.Second)
			if ms == 0 {
				ms = 1 // 0 would mean the client's own timeout
			}
			return C.accord_session_keepalive(p, ms)
		})
	})
}

// Close ends the session: everything it held is released at once. Idempotent.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ptr == nil {
		return nil
	}
	err := call(func() C.accord_result { return C.accord_session_close(s.ptr) })
	C.accord_session_free(s.ptr)
	s.ptr = nil
	if err != nil && !isShutdown(err) {
		return err
	}
	return nil
}

func (s *Session) free() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ptr != nil {
		C.accord_session_free(s.ptr)
		s.ptr = nil
	}
}

func isShutdown(err error) bool {
	e, ok := err.(*Error)
	return ok && e.kind == ErrShutdown
}

// Mutex is a mutex named in the cluster, taken for this session.
func (s *Session) Mutex(name string) *Mutex { return &Mutex{session: s, name: []byte(name)} }

// Mutex is a lock held by one session at a time, FIFO, with fencing tokens.
type Mutex struct {
	session *Session
	name    []byte
	mu      sync.Mutex
	lock    *C.accord_lock
	token   uint64
}

// Lock takes the mutex, waiting (FIFO) until ctx is done; returns the grant's fencing token.
// Cancelling ctx withdraws the wait.
func (m *Mutex) Lock(ctx context.Context) (uint64, error) {
	var lock *C.accord_lock
	err := m.session.use(func(p *C.accord_session) error {
		n, nl := bytesArg(m.name)
		return cancellable(ctx, func() { C.accord_session_cancel(p) }, func() C.accord_result {
			return C.accord_lock_acquire(p, n, nl, C.ACCORD_LOCK_MUTEX, 0, timeoutMs(ctx, time.Hour), false, &lock)
		})
	})
	if err != nil {
		return 0, err
	}
	var token C.uint64_t
	if err := call(func() C.accord_result { return C.accord_lock_token(lock, &token) }); err != nil {
		C.accord_lock_free(lock)
		return 0, err
	}
	m.mu.Lock()
	m.lock, m.token = lock, uint64(token)
	m.mu.Unlock()
	return uint64(token), nil
}

// IsHeld says whether the mutex is surely still held (the session's safety clock).
func (m *Mutex) IsHeld() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lock != nil && bool(C.accord_lock_is_held(m.lock))
}

// Token is the current grant's fencing token (0 when not held).
func (m *Mutex) Token() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.token
}

// Unlock releases the mutex.
func (m *Mutex) Unlock(ctx context.Context) error {
	m.mu.Lock()
	lock := m.lock
	m.lock, m.token = nil, 0
	m.mu.Unlock()
	if lock == nil {
		return nil
	}
	defer C.accord_lock_free(lock)
	return call(func() C.accord_result { return C.accord_lock_release(lock) })
}
