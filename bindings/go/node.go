package accord

/*
#include <stdlib.h>
#include "accord.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unsafe"
)

// NodeConfig describes a member to run in this process.
type NodeConfig struct {
	// ID is the member's id (1, 2, 3...).
	ID uint64
	// Listen is its address ("127.0.0.1:7101").
	Listen string
	// Peers are the other members' addresses by id.
	Peers map[uint64]string
	// DataDir is its data directory (created 0700 if missing, locked while it runs).
	DataDir string
}

// Node is a cluster member running in this process.
type Node struct {
	mu  sync.Mutex
	ptr *C.accord_node
}

// StartNode starts a member.
func StartNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids := make([]uint64, 0, len(cfg.Peers))
	for id := range cfg.Peers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	peers := make([]string, 0, len(ids))
	for _, id := range ids {
		peers = append(peers, fmt.Sprintf("%d=%s", id, cfg.Peers[id]))
	}
	listen := C.CString(cfg.Listen)
	defer C.free(unsafe.Pointer(listen))
	peerText := C.CString(strings.Join(peers, ","))
	defer C.free(unsafe.Pointer(peerText))
	dir := C.CString(cfg.DataDir)
	defer C.free(unsafe.Pointer(dir))
	var ptr *C.accord_node
	if err := call(func() C.accord_result {
		return C.accord_node_start(C.uint64_t(cfg.ID), listen, peerText, dir, &ptr)
	}); err != nil {
		return nil, err
	}
	n := &Node{ptr: ptr}
	runtime.SetFinalizer(n, func(n *Node) { n.Stop() })
	return n, nil
}

// Client is a client of this member (local requests; follows the leader elsewhere).
func (n *Node) Client() (*Client, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ptr == nil {
		return nil, &Error{Code: uint32(C.ACCORD_ERR_SHUTDOWN), Message: "the node was stopped", kind: ErrShutdown}
	}
	var ptr *C.accord_client
	if err := call(func() C.accord_result { return C.accord_node_client(n.ptr, &ptr) }); err != nil {
		return nil, err
	}
	return newClient(ptr), nil
}

// Stop stops the member (its data stays on disk) and frees it. Idempotent.
func (n *Node) Stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ptr == nil {
		return nil
	}
	err := call(func() C.accord_result { return C.accord_node_stop(n.ptr) })
	C.accord_node_free(n.ptr)
	n.ptr = nil
	if err != nil && !isShutdown(err) {
		return err
	}
	return nil
}
