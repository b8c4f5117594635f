package accord

/*
#include <stdlib.h>
#include "accord.h"
*/
import "C"

import (
	"context"
	"time"
)

// RWMutex is a read-write lock named in the cluster, for this session.
func (s *Session) RWMutex(name string) *RWMutex { return &RWMutex{session: s, name: []byte(name)} }

// RWMutex gives many readers or one writer, FIFO (a waiting writer is not overtaken).
type RWMutex struct {
	session *Session
	name    []byte
}

// Held is a lock, read lock, write lock or semaphore permit held by a session.
type Held struct {
	lock  *C.accord_lock
	Token uint64
}

// IsHeld says whether it is surely still held (the session's safety clock).
func (h *Held) IsHeld() bool { return h.lock != nil && bool(C.accord_lock_is_held(h.lock)) }

// Release gives it back. Idempotent.
func (h *Held) Release() error {
	if h.lock == nil {
		return nil
	}
	err := call(func() C.accord_result { return C.accord_lock_release(h.lock) })
	C.accord_lock_free(h.lock)
	h.lock = nil
	if err != nil && !isShutdown(err) {
		return err
	}
	return nil
}

func (s *Session) acquire(ctx context.Context, name []byte, kind C.accord_lock_kind, permits uint32) (*Held, error) {
	var lock *C.accord_lock
	err := s.use(func(p *C.accord_session) error {
		n, nl := bytesArg(name)
		return cancellable(ctx, func() { C.accord_session_cancel(p) }, func() C.accord_result {
			return C.accord_lock_acquire(p, n, nl, kind, C.uint32_t(permits), timeoutMs(ctx, time.Hour), false, &lock)
		})
	})
	if err != nil {
		return nil, err
	}
	var token C.uint64_t
	if err := call(func() C.accord_result { return C.accord_lock_token(lock, &token) }); err != nil {
		C.accord_lock_free(lock)
		return nil, err
	}
	return &Held{lock: lock, Token: uint64(token)}, nil
}

// RLock takes the read side (shared with other readers).
func (m *RWMutex) RLock(ctx context.Context) (*Held, error) {
	return m.session.acquire(ctx, m.name, C.ACCORD_LOCK_READ, 0)
}

// Lock takes the write side (alone).
func (m *RWMutex) Lock(ctx context.Context) (*Held, error) {
	return m.session.acquire(ctx, m.name, C.ACCORD_LOCK_WRITE, 0)
}

// Semaphore takes one of the `permits` permits of the semaphore `name`.
func (s *Session) Semaphore(ctx context.Context, name string, permits uint32) (*Held, error) {
	return s.acquire(ctx, []byte(name), C.ACCORD_LOCK_SEMAPHORE, permits)
}

// Leadership of an election.
type Leadership struct {
	ptr   *C.accord_leadership
	Token uint64
}

// Campaign stands for election `name` with `value` and returns once elected (or when ctx
// is done: the candidacy is withdrawn).
func (s *Session) Campaign(ctx context.Context, name string, value []byte) (*Leadership, error) {
	var ptr *C.accord_leadership
	err := s.use(func(p *C.accord_session) error {
		n, nl := bytesArg([]byte(name))
		v, vl := bytesArg(value)
		return cancellable(ctx, func() { C.accord_session_cancel(p) }, func() C.accord_result {
			return C.accord_election_campaign(p, n, nl, v, vl, timeoutMs(ctx, time.Hour), &ptr)
		})
	})
	if err != nil {
		return nil, err
	}
	var token C.uint64_t
	if err := call(func() C.accord_result { return C.accord_leadership_token(ptr, &token) }); err != nil {
		C.accord_leadership_free(ptr)
		return nil, err
	}
	return &Leadership{ptr: ptr, Token: uint64(token)}, nil
}

// IsLeader says whether this process surely still leads.
func (l *Leadership) IsLeader() bool {
	return l.ptr != nil && bool(C.accord_leadership_is_leader(l.ptr))
}

// Proclaim publishes a new value for observers.
func (l *Leadership) Proclaim(value []byte) error {
	if l.ptr == nil {
		return &Error{Code: uint32(C.ACCORD_ERR_SHUTDOWN), Message: "resigned", kind: ErrShutdown}
	}
	v, vl := bytesArg(value)
	return call(func() C.accord_result { return C.accord_leadership_proclaim(l.ptr, v, vl) })
}

// Resign steps down. Idempotent.
func (l *Leadership) Resign() error {
	if l.ptr == nil {
		return nil
	}
	err := call(func() C.accord_result { return C.accord_leadership_resign(l.ptr) })
	C.accord_leadership_free(l.ptr)
	l.ptr = nil
	if err != nil && !isShutdown(err) {
		return err
	}
	return nil
}

// Leader is an election's leader as observers see it.
type Leader struct {
	// Present is false while there is no leader.
	Present  bool
	Session  uint64
	Token    uint64
	Value    []byte
	Revision uint64
}

// Leader is election `name`'s leader now (linearizable); Present is false when there is
// none. No session is needed.
func (c *Client) Leader(ctx context.Context, name string) (Leader, error) {
	var found C.bool
	var session, token C.uint64_t
	var buf C.accord_buf
	err := c.use(func(p *C.accord_client) error {
		n, nl := bytesArg([]byte(name))
		return cancellable(ctx, func() { C.accord_client_cancel(p) }, func() C.accord_result {
			return C.accord_election_leader(p, n, nl, &found, &session, &token, &buf)
		})
	})
	if err != nil {
		return Leader{}, err
	}
	value := takeBuf(buf)
	if !bool(found) {
		return Leader{}, nil
	}
	return Leader{Present: true, Session: uint64(session), Token: uint64(token), Value: value}, nil
}

// Observe sends election `name`'s leadership changes (the first is the leader now) until ctx
// is done; the channel is closed then, or on an error.
func (c *Client) Observe(ctx context.Context, name string) (<-chan Leader, error) {
	var ptr *C.accord_observer
	err := c.use(func(p *C.accord_client) error {
		n, nl := bytesArg([]byte(name))
		return call(func() C.accord_result { return C.accord_election_observe(p, n, nl, &ptr) })
	})
	if err != nil {
		return nil, err
	}
	out := make(chan Leader, 16)
	go func() {
		defer close(out)
		defer C.accord_observer_free(ptr)
		for ctx.Err() == nil {
			var revision, session, token C.uint64_t
			var has C.bool
			var buf C.accord_buf
			err := call(func() C.accord_result {
				return C.accord_observer_next(ptr, 100, &revision, &has, &session, &token, &buf)
			})
			if err != nil {
				if e, ok := err.(*Error); ok && e.kind == ErrTimeout {
					continue
				}
				return
			}
			change := Leader{Present: bool(has), Session: uint64(session), Token: uint64(token), Value: takeBuf(buf), Revision: uint64(revision)}
			select {
			case out <- change:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// Join joins `group` as `member` with `metadata`, for as long as the session lives; the
// returned function leaves.
func (s *Session) Join(ctx context.Context, group, member string, metadata []byte) (leave func() error, err error) {
	var ptr *C.accord_membership
	err = s.use(func(p *C.accord_session) error {
		g, gl := bytesArg([]byte(group))
		m, ml := bytesArg([]byte(member))
		d, dl := bytesArg(metadata)
		return cancellable(ctx, func() { C.accord_session_cancel(p) }, func() C.accord_result {
			return C.accord_group_join(p, g, gl, m, ml, d, dl, &ptr)
		})
	})
	if err != nil {
		return nil, err
	}
	return func() error {
		if ptr == nil {
			return nil
		}
		err := call(func() C.accord_result { return C.accord_membership_leave(ptr) })
		C.accord_membership_free(ptr)
		ptr = nil
		return err
	}, nil
}

// Member is a member of a group.
type Member struct {
	ID       string
	Session  uint64
	Metadata []byte
}

// Members lists `group`'s members now (linearizable), in member order. No session is needed.
func (c *Client) Members(ctx context.Context, group string) ([]Member, error) {
	var list *C.accord_member_list
	err := c.use(func(p *C.accord_client) error {
		g, gl := bytesArg([]byte(group))
		return cancellable(ctx, func() { C.accord_client_cancel(p) }, func() C.accord_result {
			return C.accord_group_members(p, g, gl, &list)
		})
	})
	if err != nil {
		return nil, err
	}
	defer C.accord_member_list_free(list)
	n := int(C.accord_member_list_len(list))
	out := make([]Member, 0, n)
	for i := 0; i < n; i++ {
		var id, metadata *C.uint8_t
		var idLen, metadataLen C.size_t
		var session C.uint64_t
		if err := call(func() C.accord_result {
			return C.accord_member_list_entry(list, C.size_t(i), &id, &idLen, &session, &metadata, &metadataLen)
		}); err != nil {
			return nil, err
		}
		out = append(out, Member{ID: string(goBytes(id, idLen)), Session: uint64(session), Metadata: goBytes(metadata, metadataLen)})
	}
	return out, nil
}

// Enqueue adds `payload` to `queue`; returns the item's id.
func (c *Client) Enqueue(ctx context.Context, queue string, payload []byte) (uint64, error) {
	var item C.uint64_t
	err := c.use(func(p *C.accord_client) error {
		q, ql := bytesArg([]byte(queue))
		d, dl := bytesArg(payload)
		return cancellable(ctx, func() { C.accord_client_cancel(p) }, func() C.accord_result {
			return C.accord_queue_enqueue(p, q, ql, d, dl, &item)
		})
	})
	return uint64(item), err
}

// Claim is a claimed work item.
type Claim struct {
	ptr     *C.accord_claim
	Item    uint64
	Token   uint64
	Payload []byte
}

// Claim claims the oldest unclaimed item of `queue`, waiting until ctx is done.
func (s *Session) Claim(ctx context.Context, queue string) (*Claim, error) {
	var ptr *C.accord_claim
	err := s.use(func(p *C.accord_session) error {
		q, ql := bytesArg([]byte(queue))
		return cancellable(ctx, func() { C.accord_session_cancel(p) }, func() C.accord_result {
			return C.accord_queue_claim(p, q, ql, timeoutMs(ctx, time.Hour), false, &ptr)
		})
	})
	if err != nil {
		return nil, err
	}
	var item, token C.uint64_t
	var payload *C.uint8_t
	var length C.size_t
	if err := call(func() C.accord_result {
		return C.accord_claim_item(ptr, &item, &token, &payload, &length)
	}); err != nil {
		C.accord_claim_free(ptr)
		return nil, err
	}
	return &Claim{ptr: ptr, Item: uint64(item), Token: uint64(token), Payload: goBytes(payload, length)}, nil
}

// IsHeld says whether the claim surely still holds (not settled, its session not lost by
// the safety clock). When false, stop working on the item: it will be redelivered.
func (c *Claim) IsHeld() bool { return c.ptr != nil && bool(C.accord_claim_is_held(c.ptr)) }

// Ack acknowledges the item (it leaves the queue for good); Release gives it back.
func (c *Claim) Ack() error { return c.settle(true) }

// Release gives the item back to the queue.
func (c *Claim) Release() error { return c.settle(false) }

func (c *Claim) settle(ack bool) error {
	if c.ptr == nil {
		return &Error{Code: uint32(C.ACCORD_ERR_SHUTDOWN), Message: "already settled", kind: ErrShutdown}
	}
	err := call(func() C.accord_result { return C.accord_claim_settle(c.ptr, C.bool(ack)) })
	C.accord_claim_free(c.ptr)
	c.ptr = nil
	return err
}

// Barrier waits until `participants` sessions arrived at barrier `name` (or ctx is done:
// this session leaves the barrier).
func (s *Session) Barrier(ctx context.Context, name string, participants uint32) error {
	return s.use(func(p *C.accord_session) error {
		n, nl := bytesArg([]byte(name))
		return cancellable(ctx, func() { C.accord_session_cancel(p) }, func() C.accord_result {
			return C.accord_barrier_wait(p, n, nl, C.uint32_t(participants), timeoutMs(ctx, time.Hour))
		})
	})
}

// CounterAdd adds delta to counter `name`; returns the new value.
func (c *Client) CounterAdd(ctx context.Context, name string, delta int64) (int64, error) {
	var value C.int64_t
	err := c.use(func(p *C.accord_client) error {
		n, nl := bytesArg([]byte(name))
		return cancellable(ctx, func() { C.accord_client_cancel(p) }, func() C.accord_result {
			return C.accord_counter_add(p, n, nl, C.int64_t(delta), &value)
		})
	})
	return int64(value), err
}

// Event is one change seen by a watch.
type Event struct {
	Revision uint64
	Kind     uint32
	Key      []byte
	Value    []byte
	Session  uint64
	Token    uint64
	Item     uint64
}

// Event kinds (see accord.h).
const (
	EventPut     = uint32(C.ACCORD_EVENT_PUT)
	EventDelete  = uint32(C.ACCORD_EVENT_DELETE)
	EventGranted = uint32(C.ACCORD_EVENT_GRANTED)
	EventEnded   = uint32(C.ACCORD_EVENT_ENDED)
)

// Watch sends the changes of keys under `prefix` from revision `from` (in revision order,
// none missed or repeated) until ctx is done; the error channel says why it stopped early
// (ErrCompacted: list again).
func (kv *KV) Watch(ctx context.Context, prefix []byte, from uint64) (<-chan Event, <-chan error, error) {
	var ptr *C.accord_watch
	err := kv.client.use(func(p *C.accord_client) error {
		pp, pl := bytesArg(prefix)
		return call(func() C.accord_result {
			return C.accord_watch_open(p, C.ACCORD_SPACE_KV, pp, pl, C.uint64_t(from), &ptr)
		})
	})
	if err != nil {
		return nil, nil, err
	}
	events := make(chan Event, 64)
	failed := make(chan error, 1)
	go func() {
		defer close(events)
		defer C.accord_watch_free(ptr)
		for ctx.Err() == nil {
			var list *C.accord_event_list
			err := call(func() C.accord_result { return C.accord_watch_next(ptr, 100, &list) })
			if err != nil {
				if e, ok := err.(*Error); ok && e.kind == ErrTimeout {
					continue
				}
				failed <- err
				return
			}
			n := int(C.accord_event_list_len(list))
			batch := make([]Event, 0, n)
			for i := 0; i < n; i++ {
				var e C.accord_event
				if call(func() C.accord_result { return C.accord_event_list_get(list, C.size_t(i), &e) }) == nil {
					batch = append(batch, Event{
						Revision: uint64(e.revision), Kind: uint32(e.kind),
						Key: goBytes(e.key, e.key_len), Value: goBytes(e.value, e.value_len),
						Session: uint64(e.session), Token: uint64(e.token), Item: uint64(e.item),
					})
				}
			}
			C.accord_event_list_free(list)
			for _, event := range batch {
				select {
				case events <- event:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return events, failed, nil
}

// Counter is counter `name`'s value (linearizable; 0 if never added to).
func (c *Client) Counter(ctx context.Context, name string) (int64, error) {
	var value C.int64_t
	err := c.use(func(p *C.accord_client) error {
		n, nl := bytesArg([]byte(name))
		return cancellable(ctx, func() { C.accord_client_cancel(p) }, func() C.accord_result {
			return C.accord_counter_get(p, n, nl, &value)
		})
	})
	return int64(value), err
}
