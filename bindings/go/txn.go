package accord

/*
#include <stdlib.h>
#include "accord.h"
*/
import "C"

import "context"

// CompareAndSwap sets key to value if it holds expected; a nil expected means "if key does
// not exist" (an empty, non-nil slice means "exists with an empty value"). Returns whether
// it swapped.
func (kv *KV) CompareAndSwap(ctx context.Context, key, expected, value []byte) (bool, error) {
	var swapped C.bool
	var revision C.uint64_t
	err := kv.client.use(func(p *C.accord_client) error {
		k, kl := bytesArg(key)
		e, el := bytesArg(expected)
		v, vl := bytesArg(value)
		return cancellable(ctx, func() { C.accord_client_cancel(p) }, func() C.accord_result {
			return C.accord_kv_compare_and_swap(p, k, kl, e, el, C.bool(expected == nil), v, vl, &swapped, &revision)
		})
	})
	return bool(swapped), err
}

type cmpKind int

const (
	cmpValue cmpKind = iota
	cmpExists
	cmpVersion
	cmpModRevision
	cmpLockToken
	cmpLeaderToken
)

// Cmp is one comparison of a transaction (ValueIs, KeyExists, KeyAbsent, VersionIs,
// ModRevisionIs, LockTokenIs, LeaderTokenIs).
type Cmp struct {
	kind   cmpKind
	key    []byte
	value  []byte
	number uint64
	exists bool
}

// ValueIs requires key to hold exactly value.
func ValueIs(key, value []byte) Cmp { return Cmp{kind: cmpValue, key: key, value: value} }

// KeyExists requires key to exist.
func KeyExists(key []byte) Cmp { return Cmp{kind: cmpExists, key: key, exists: true} }

// KeyAbsent requires key not to exist.
func KeyAbsent(key []byte) Cmp { return Cmp{kind: cmpExists, key: key} }

// VersionIs requires key's version (writes since it was created; 0: absent) to be version.
func VersionIs(key []byte, version uint64) Cmp {
	return Cmp{kind: cmpVersion, key: key, number: version}
}

// ModRevisionIs requires key to have been last written at revision (0: absent).
func ModRevisionIs(key []byte, revision uint64) Cmp {
	return Cmp{kind: cmpModRevision, key: key, number: revision}
}

// LockTokenIs requires the lock `lock` to be held with fencing token `token`: a fenced write
// (a deposed holder's transaction fails).
func LockTokenIs(lock string, token uint64) Cmp {
	return Cmp{kind: cmpLockToken, key: []byte(lock), number: token}
}

// LeaderTokenIs requires election `election` to be led with fencing token `token`.
func LeaderTokenIs(election string, token uint64) Cmp {
	return Cmp{kind: cmpLeaderToken, key: []byte(election), number: token}
}

// Op is one write of a transaction (OpPut, OpDelete).
type Op struct {
	key, value []byte
	delete     bool
}

// OpPut sets key to value.
func OpPut(key, value []byte) Op { return Op{key: key, value: value} }

// OpDelete deletes key.
func OpDelete(key []byte) Op { return Op{key: key, delete: true} }

// Txn is a transaction being built: kv.Txn(ctx).If(...).Then(...).Else(...).Commit().
type Txn struct {
	kv        *KV
	ctx       context.Context
	cmps      []Cmp
	then, els []Op
}

// TxnResponse says whether every comparison held (the Then branch ran) and the revision.
type TxnResponse struct {
	Succeeded bool
	Revision  uint64
}

// Txn starts a transaction: atomically, if every comparison holds, the Then writes, else
// the Else writes.
func (kv *KV) Txn(ctx context.Context) *Txn { return &Txn{kv: kv, ctx: ctx} }

// If adds comparisons (all must hold).
func (t *Txn) If(cmps ...Cmp) *Txn { t.cmps = append(t.cmps, cmps...); return t }

// Then adds writes made when every comparison holds.
func (t *Txn) Then(ops ...Op) *Txn { t.then = append(t.then, ops...); return t }

// Else adds writes made when a comparison fails.
func (t *Txn) Else(ops ...Op) *Txn { t.els = append(t.els, ops...); return t }

// Commit runs the transaction.
func (t *Txn) Commit() (TxnResponse, error) {
	txn := C.accord_txn_new()
	defer C.accord_txn_free(txn)
	for _, c := range t.cmps {
		c := c
		k, kl := bytesArg(c.key)
		err := call(func() C.accord_result {
			switch c.kind {
			case cmpValue:
				v, vl := bytesArg(c.value)
				return C.accord_txn_compare_value(txn, k, kl, v, vl)
			case cmpExists:
				return C.accord_txn_compare_exists(txn, k, kl, C.bool(c.exists))
			case cmpVersion:
				return C.accord_txn_compare_version(txn, k, kl, C.uint64_t(c.number))
			case cmpModRevision:
				return C.accord_txn_compare_mod_revision(txn, k, kl, C.uint64_t(c.number))
			case cmpLockToken:
				return C.accord_txn_compare_lock_token(txn, k, kl, C.uint64_t(c.number))
			default:
				return C.accord_txn_compare_leader_token(txn, k, kl, C.uint64_t(c.number))
			}
		})
		if err != nil {
			return TxnResponse{}, err
		}
	}
	for i, branch := range [][]Op{t.then, t.els} {
		onSuccess := C.bool(i == 0)
		for _, op := range branch {
			op := op
			k, kl := bytesArg(op.key)
			err := call(func() C.accord_result {
				if op.delete {
					return C.accord_txn_delete(txn, onSuccess, k, kl)
				}
				v, vl := bytesArg(op.value)
				return C.accord_txn_put(txn, onSuccess, k, kl, v, vl)
			})
			if err != nil {
				return TxnResponse{}, err
			}
		}
	}
	var succeeded C.bool
	var revision C.uint64_t
	err := t.kv.client.use(func(p *C.accord_client) error {
		return cancellable(t.ctx, func() { C.accord_client_cancel(p) }, func() C.accord_result {
			return C.accord_kv_txn(p, txn, &succeeded, &revision)
		})
	})
	return TxnResponse{Succeeded: bool(succeeded), Revision: uint64(revision)}, err
}
