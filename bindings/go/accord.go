// Package accord is the Go binding of accord, an embeddable coordination engine: join a
// cluster, take locks that stay safe through pauses and partitions, elect leaders, and
// replicate small state, without a separate etcd, ZooKeeper or Consul.
//
// It calls the C ABI (include/accord.h) through cgo. Inside the repository it links libaccord
// from target/release: build it first with `make build` at the repository root. Elsewhere,
// install the library (`make install`) and build with CGO_CFLAGS and CGO_LDFLAGS from
// `pkg-config --cflags --libs accord` (see the repository's README).
//
// C never keeps a Go pointer: byte slices are passed for the duration of a call only, and
// watches and election observers are goroutines that poll the library (each poll waits at
// most 100 ms in C) instead of C calling back into Go. Polling was chosen over callbacks
// through cgo.Handle because a callback runs on a library thread and must not block, so it
// could only drop events or buffer them without bound when the Go consumer is slow; a poll
// asks for the next events only once the channel has taken the previous ones, which is
// back-pressure with a bounded buffer, and never loses an event.
//
// Every call takes a context.Context: its deadline bounds the call and its cancellation
// cancels the call in C. Errors wrap sentinel values for errors.Is (ErrTimeout,
// ErrSessionLost, ...).
package accord

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/release -laccord -Wl,-rpath,${SRCDIR}/../../target/release
#include <stdlib.h>
#include <time.h>
#include "accord.h"

// `calls` serializable gets of `key` looped in C; nanoseconds per call (the benchmark's
// reference for the same call made from Go).
static double accord_go_c_gets(accord_client *client, const uint8_t *key, size_t len, uint32_t calls) {
	struct timespec start, end;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (uint32_t i = 0; i < calls; i++) {
		bool found;
		accord_buf value;
		uint64_t revision;
		if (accord_kv_get(client, key, len, true, &found, &value, &revision) == ACCORD_OK)
			accord_buf_free(value);
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	double ns = (double)(end.tv_sec - start.tv_sec) * 1e9 + (double)(end.tv_nsec - start.tv_nsec);
	return calls ? ns / calls : 0;
}

// CPU time of the calling thread, in nanoseconds (the overhead benchmark's clock: it leaves
// out the time the thread waits for the member's event loop, the noisy part of a call).
static int64_t accord_go_thread_cpu_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (int64_t)t.tv_sec * 1000000000 + (int64_t)t.tv_nsec;
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// cGetsNanos runs `calls` serializable gets in C and returns nanoseconds per call.
func cGetsNanos(c *Client, key []byte, calls uint32) float64 {
	var ns C.double
	c.use(func(p *C.accord_client) error {
		k, kl := bytesArg(key)
		ns = C.accord_go_c_gets(p, k, kl, C.uint32_t(calls))
		return nil
	})
	return float64(ns)
}

// rawGetSerializable is a serializable get made with the bare cgo calls (no context, no
// locking, no error translation): the overhead benchmark's reference for what this
// package's wrapper adds on top of cgo.
func rawGetSerializable(c *Client, key []byte) bool {
	var found C.bool
	var buf C.accord_buf
	var revision C.uint64_t
	code := C.accord_kv_get(c.ptr, (*C.uint8_t)(unsafe.Pointer(&key[0])), C.size_t(len(key)), true, &found, &buf, &revision)
	C.accord_buf_free(buf)
	return code == C.ACCORD_OK
}

// threadCPUNanos is the calling OS thread's CPU time (for benchmarks; lock the thread).
func threadCPUNanos() int64 { return int64(C.accord_go_thread_cpu_ns()) }

// Errors, for errors.Is.
var (
	ErrNullArgument    = errors.New("accord: NULL argument")
	ErrInvalidArgument = errors.New("accord: invalid argument")
	ErrShutdown        = errors.New("accord: closed")
	ErrTimeout         = errors.New("accord: timed out")
	ErrCancelled       = errors.New("accord: cancelled")
	ErrUnavailable     = errors.New("accord: no leader answered (quorum lost?)")
	ErrRejected        = errors.New("accord: refused by the cluster")
	ErrSessionLost     = errors.New("accord: session lost")
	ErrIO              = errors.New("accord: I/O error")
	ErrCorruption      = errors.New("accord: stored data damaged")
	ErrLocked          = errors.New("accord: data directory locked")
	ErrConfig          = errors.New("accord: invalid configuration")
	ErrProtocol        = errors.New("accord: protocol error")
	ErrCompacted       = errors.New("accord: revision compacted")
	ErrPermission      = errors.New("accord: permission denied")
	ErrInternal        = errors.New("accord: internal error")
)

// Error is a failed call: its code's sentinel (for errors.Is) and the library's message.
type Error struct {
	Code    uint32
	Message string
	kind    error
}

// Error gives the kind and the library's message.
func (e *Error) Error() string { return fmt.Sprintf("%v: %s", e.kind, e.Message) }

// Unwrap gives the sentinel.
func (e *Error) Unwrap() error { return e.kind }

func sentinel(code C.accord_result) error {
	switch code {
	case C.ACCORD_ERR_NULL_ARGUMENT:
		return ErrNullArgument
	case C.ACCORD_ERR_INVALID_ARGUMENT:
		return ErrInvalidArgument
	case C.ACCORD_ERR_SHUTDOWN:
		return ErrShutdown
	case C.ACCORD_ERR_TIMEOUT:
		return ErrTimeout
	case C.ACCORD_ERR_CANCELLED:
		return ErrCancelled
	case C.ACCORD_ERR_UNAVAILABLE:
		return ErrUnavailable
	case C.ACCORD_ERR_REJECTED:
		return ErrRejected
	case C.ACCORD_ERR_SESSION_LOST:
		return ErrSessionLost
	case C.ACCORD_ERR_IO:
		return ErrIO
	case C.ACCORD_ERR_CORRUPTION:
		return ErrCorruption
	case C.ACCORD_ERR_LOCKED:
		return ErrLocked
	case C.ACCORD_ERR_CONFIG:
		return ErrConfig
	case C.ACCORD_ERR_PROTOCOL:
		return ErrProtocol
	case C.ACCORD_ERR_COMPACTED:
		return ErrCompacted
	case C.ACCORD_ERR_PERMISSION_DENIED:
		return ErrPermission
	default:
		return ErrInternal
	}
}

// check turns a result into an error. The message is read on the same OS thread as the call
// (the library keeps it per thread): callers lock the goroutine to its thread around both.
func check(code C.accord_result) error {
	if code == C.ACCORD_OK {
		return nil
	}
	return &Error{
		Code:    uint32(code),
		Message: C.GoString(C.accord_last_error_message()),
		kind:    sentinel(code),
	}
}

// call runs a C call on a locked OS thread, so that its error message can be read after it.
func call(f func() C.accord_result) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return check(f())
}

// cancellable runs a blocking C call; if ctx is cancelled first, `cancel` asks the library to
// stop it, and the call returns (then with ErrCancelled wrapped in ctx's error). A context
// that cannot be cancelled costs nothing; one that can costs a registration, not a goroutine.
func cancellable(ctx context.Context, cancel func(), f func() C.accord_result) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ctx.Done() == nil {
		return call(f)
	}
	var running sync.WaitGroup
	running.Add(1)
	stop := context.AfterFunc(ctx, func() {
		defer running.Done()
		cancel()
	})
	err := call(f)
	if !stop() {
		// The cancellation is running or ran: let it finish before the next call starts, so
		// that it cannot cancel that one instead.
		running.Wait()
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// timeoutMs is ctx's deadline as milliseconds from now (def when ctx has none).
func timeoutMs(ctx context.Context, def time.Duration) C.uint32_t {
	left := def
	if deadline, ok := ctx.Deadline(); ok {
		left = time.Until(deadline)
	}
	if left < 0 {
		left = 0
	}
	ms := left.Milliseconds()
	if ms > 0xffffffff {
		ms = 0xffffffff
	}
	return C.uint32_t(ms)
}

// bytesArg passes a Go byte slice to C for the duration of a call (cgo pins it).
func bytesArg(b []byte) (*C.uint8_t, C.size_t) {
	if len(b) == 0 {
		return nil, 0
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0])), C.size_t(len(b))
}

// takeBuf copies an accord_buf into Go memory and frees it.
func takeBuf(buf C.accord_buf) []byte {
	defer C.accord_buf_free(buf)
	if buf.data == nil || buf.len == 0 {
		return []byte{}
	}
	return C.GoBytes(unsafe.Pointer(buf.data), C.int(buf.len))
}

// goBytes copies C bytes into Go memory.
func goBytes(data *C.uint8_t, length C.size_t) []byte {
	if data == nil || length == 0 {
		return []byte{}
	}
	return C.GoBytes(unsafe.Pointer(data), C.int(length))
}

// Version is the library's version.
func Version() string { return C.GoString(C.accord_version()) }

// ABIVersion is the C ABI version the library implements; the binding checks it matches
// the header it was built against.
func ABIVersion() uint32 { return uint32(C.accord_abi_version()) }

func init() {
	if ABIVersion() != uint32(C.ACCORD_ABI_VERSION) {
		panic(fmt.Sprintf("accord: libaccord implements ABI %d, this binding needs %d",
			ABIVersion(), C.ACCORD_ABI_VERSION))
	}
}

// Client is a connection to a cluster. Safe for concurrent use. Close it when done (a
// finalizer frees it otherwise).
type Client struct {
	mu  sync.RWMutex
	ptr *C.accord_client
}

type clientOptions struct {
	clusterID              uint64
	timeout                time.Duration
	tlsCA, tlsCert, tlsKey string
	token                  string
}

// ClientOption configures Connect.
type ClientOption func(*clientOptions)

// WithClusterID sets the cluster's id (default 1).
func WithClusterID(id uint64) ClientOption { return func(o *clientOptions) { o.clusterID = id } }

// WithCallTimeout bounds each call, retries included, when its context has no deadline
// (default 10 s).
func WithCallTimeout(d time.Duration) ClientOption {
	return func(o *clientOptions) { o.timeout = d }
}

// WithTLS connects with TLS, trusting the cluster CA in caFile (PEM). certFile and keyFile
// are the client's certificate and key, when the members require one ("" for neither).
func WithTLS(caFile, certFile, keyFile string) ClientOption {
	return func(o *clientOptions) { o.tlsCA, o.tlsCert, o.tlsKey = caFile, certFile, keyFile }
}

// WithToken sends a shared-secret token the members' access file knows this client by
// (use TLS too, so the network cannot read it).
func WithToken(token string) ClientOption { return func(o *clientOptions) { o.token = token } }

// cStringOrNil is a C copy of s, or nil for "" (free it with C.free; nil is fine).
func cStringOrNil(s string) *C.char {
	if s == "" {
		return nil
	}
	return C.CString(s)
}

// Connect prepares a client of the cluster at endpoints ("host:port"); the first call
// connects.
func Connect(ctx context.Context, endpoints []string, opts ...ClientOption) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := clientOptions{clusterID: 1, timeout: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	text := C.CString(strings.Join(endpoints, ","))
	defer C.free(unsafe.Pointer(text))
	ca, cert, key, token := cStringOrNil(o.tlsCA), cStringOrNil(o.tlsCert), cStringOrNil(o.tlsKey), cStringOrNil(o.token)
	defer func() {
		for _, s := range []*C.char{ca, cert, key, token} {
			C.free(unsafe.Pointer(s))
		}
	}()
	var ptr *C.accord_client
	err := call(func() C.accord_result {
		return C.accord_client_connect_secure(text, C.uint64_t(o.clusterID), timeoutMs(context.Background(), o.timeout),
			ca, cert, key, token, &ptr)
	})
	if err != nil {
		return nil, err
	}
	return newClient(ptr), nil
}

func newClient(ptr *C.accord_client) *Client {
	c := &Client{ptr: ptr}
	runtime.SetFinalizer(c, func(c *Client) { c.Close() })
	return c
}

// Close closes and frees the client; later calls return ErrShutdown. Idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr == nil {
		return nil
	}
	C.accord_client_close(c.ptr)
	C.accord_client_free(c.ptr)
	c.ptr = nil
	return nil
}

// use runs f with the live handle (ErrShutdown after Close).
func (c *Client) use(f func(*C.accord_client) error) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ptr == nil {
		return &Error{Code: uint32(C.ACCORD_ERR_SHUTDOWN), Message: "the client was closed", kind: ErrShutdown}
	}
	err := f(c.ptr)
	runtime.KeepAlive(c)
	return err
}

// KV is the key-value store.
func (c *Client) KV() *KV { return &KV{client: c} }

// KV reads and writes keys.
type KV struct{ client *Client }

// Put sets key to value; returns the revision of the write.
func (kv *KV) Put(ctx context.Context, key, value []byte) (uint64, error) {
	var revision C.uint64_t
	err := kv.client.use(func(p *C.accord_client) error {
		k, kl := bytesArg(key)
		v, vl := bytesArg(value)
		return cancellable(ctx, func() { C.accord_client_cancel(p) }, func() C.accord_result {
			return C.accord_kv_put(p, k, kl, v, vl, &revision)
		})
	})
	return uint64(revision), err
}

// Get reads key (linearizable): its value, whether it exists, and the revision read at.
func (kv *KV) Get(ctx context.Context, key []byte) ([]byte, bool, uint64, error) {
	return kv.get(ctx, key, false)
}

// GetSerializable reads key from the member connected to (possibly stale, never torn).
func (kv *KV) GetSerializable(ctx context.Context, key []byte) ([]byte, bool, uint64, error) {
	return kv.get(ctx, key, true)
}

func (kv *KV) get(ctx context.Context, key []byte, serializable bool) ([]byte, bool, uint64, error) {
	var found C.bool
	var buf C.accord_buf
	var revision C.uint64_t
	err := kv.client.use(func(p *C.accord_client) error {
		k, kl := bytesArg(key)
		return cancellable(ctx, func() { C.accord_client_cancel(p) }, func() C.accord_result {
			return C.accord_kv_get(p, k, kl, C.bool(serializable), &found, &buf, &revision)
		})
	})
	if err != nil {
		return nil, false, 0, err
	}
	return takeBuf(buf), bool(found), uint64(revision), nil
}

// Delete removes key; returns whether it existed.
func (kv *KV) Delete(ctx context.Context, key []byte) (bool, error) {
	var deleted C.bool
	var revision C.uint64_t
	err := kv.client.use(func(p *C.accord_client) error {
		k, kl := bytesArg(key)
		return cancellable(ctx, func() { C.accord_client_cancel(p) }, func() C.accord_result {
			return C.accord_kv_delete(p, k, kl, &deleted, &revision)
		})
	})
	return bool(deleted), err
}

// KeyValue is one key of a range.
type KeyValue struct {
	Key   []byte
	Value []byte
}

// Range reads the keys under prefix (linearizable), at most limit (0: one reply's worth).
func (kv *KV) Range(ctx context.Context, prefix []byte, limit uint32) ([]KeyValue, error) {
	var list *C.accord_kv_list
	err := kv.client.use(func(p *C.accord_client) error {
		pp, pl := bytesArg(prefix)
		return cancellable(ctx, func() { C.accord_client_cancel(p) }, func() C.accord_result {
			return C.accord_kv_range(p, pp, pl, C.uint32_t(limit), &list)
		})
	})
	if err != nil {
		return nil, err
	}
	defer C.accord_kv_list_free(list)
	n := int(C.accord_kv_list_len(list))
	out := make([]KeyValue, 0, n)
	for i := 0; i < n; i++ {
		var k, v *C.uint8_t
		var kl, vl C.size_t
		if err := call(func() C.accord_result {
			return C.accord_kv_list_entry(list, C.size_t(i), &k, &kl, &v, &vl)
		}); err != nil {
			return nil, err
		}
		out = append(out, KeyValue{
			Key:   C.GoBytes(unsafe.Pointer(k), C.int(kl)),
			Value: C.GoBytes(unsafe.Pointer(v), C.int(vl)),
		})
	}
	return out, nil
}

// FencedPut sets key to value only if the lock `lock` is still held with fencing token
// `token` (a deposed holder's write is refused: ok is false).
func (kv *KV) FencedPut(ctx context.Context, lock []byte, token uint64, key, value []byte) (bool, error) {
	response, err := kv.Txn(ctx).If(LockTokenIs(string(lock), token)).Then(OpPut(key, value)).Commit()
	return response.Succeeded, err
}

// Status is a member's view of the cluster.
type Status struct {
	// ID is the member answering.
	ID uint64
	// Leader is the leader it knows (0: none); IsLeader says whether it is that member.
	Leader   uint64
	IsLeader bool
	Term     uint64
	// Commit, Applied and LastIndex are its log positions; Revision its state's revision.
	Commit    uint64
	Applied   uint64
	LastIndex uint64
	Revision  uint64
}

// Status asks the member the client talks to for its view of the cluster.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s C.accord_status
	err := c.use(func(p *C.accord_client) error {
		return cancellable(ctx, func() { C.accord_client_cancel(p) }, func() C.accord_result {
			return C.accord_client_status(p, &s)
		})
	})
	return Status{
		ID: uint64(s.id), Leader: uint64(s.leader), IsLeader: s.role == C.ACCORD_ROLE_LEADER,
		Term: uint64(s.term), Commit: uint64(s.commit), Applied: uint64(s.applied),
		LastIndex: uint64(s.last_index), Revision: uint64(s.revision),
	}, err
}
