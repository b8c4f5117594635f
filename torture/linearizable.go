package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// The register histories are checked twice: by Porcupine (github.com/anishathalye/porcupine,
// which we did not write) and by accord's own checker (`accord lincheck`, the one the
// simulator uses). Both must agree.

type registerState struct {
	present bool
	value   uint64
}

type registerInput struct {
	kind            int
	value, expected uint64
}

type registerOutput struct {
	unknown bool
	found   bool
	value   uint64
	ok      bool
}

// registerModel: one register per key; an absent register never matches a swap.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[int][]porcupine.Operation{}
		var keys []int
		for _, op := range history {
			k := op.Metadata.(int)
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return registerState{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		s, in, out := state.(registerState), input.(registerInput), output.(registerOutput)
		switch in.kind {
		case opPut:
			return true, registerState{true, in.value}
		case opGet:
			return out.found == s.present && (!s.present || out.value == s.value), s
		default:
			matches := s.present && s.value == in.expected
			if out.unknown {
				if matches {
					return true, registerState{true, in.value}
				}
				return true, s
			}
			if out.ok != matches {
				return false, s
			}
			if matches {
				return true, registerState{true, in.value}
			}
			return true, s
		}
	},
	Equal: func(a, b interface{}) bool { return a.(registerState) == b.(registerState) },
}

// checkPorcupine: "ok", "illegal" or "unknown" (Porcupine gave up after the timeout).
func checkPorcupine(ops []regOp, timeout time.Duration) string {
	var history []porcupine.Operation
	for _, op := range ops {
		ret := op.ret
		out := registerOutput{found: op.found, value: op.out, ok: op.ok}
		if ret < 0 {
			// Unknown: it may take effect at any time after its call (or never, which is the
			// same as at the very end).
			ret, out.unknown = math.MaxInt64, true
		}
		history = append(history, porcupine.Operation{
			ClientId: op.client,
			Input:    registerInput{kind: op.kind, value: op.value, expected: op.expected},
			Call:     op.call,
			Output:   out,
			Return:   ret,
			Metadata: op.key,
		})
	}
	switch porcupine.CheckOperationsTimeout(registerModel, history, timeout) {
	case porcupine.Ok:
		return "ok"
	case porcupine.Illegal:
		return "illegal"
	default:
		return "unknown"
	}
}

// writeHistory writes the history in `accord lincheck`'s format, one operation per line:
//
//	<client> <key> put <value> <call> <return|->
//	<client> <key> get <call> <return> <value|absent>
//	<client> <key> cas <expected> <new> <call> <return|-> [true|false]
func writeHistory(path string, ops []regOp) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	ret := func(op regOp) string {
		if op.ret < 0 {
			return "-"
		}
		return fmt.Sprint(op.ret)
	}
	for _, op := range ops {
		switch op.kind {
		case opPut:
			fmt.Fprintf(w, "%d %d put %d %d %s\n", op.client, op.key, op.value, op.call, ret(op))
		case opGet:
			value := "absent"
			if op.found {
				value = fmt.Sprint(op.out)
			}
			fmt.Fprintf(w, "%d %d get %d %d %s\n", op.client, op.key, op.call, op.ret, value)
		default:
			line := fmt.Sprintf("%d %d cas %d %d %d %s", op.client, op.key, op.expected, op.value, op.call, ret(op))
			if op.ret >= 0 {
				line += fmt.Sprintf(" %t", op.ok)
			}
			fmt.Fprintln(w, line)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// checkOwn runs `accord lincheck` on the history file: "ok" or "illegal" (or an error).
func checkOwn(binary, path string) (string, error) {
	out, err := exec.Command(binary, "lincheck", "--history", path).CombinedOutput()
	text := strings.TrimSpace(string(out))
	switch {
	case err == nil && strings.Contains(text, "linearizable=yes"):
		return "ok", nil
	case strings.Contains(text, "linearizable=no"):
		return "illegal", nil
	default:
		return "", fmt.Errorf("accord lincheck: %v: %s", err, text)
	}
}
