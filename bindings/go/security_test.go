package accord

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// accordBinary is the `accord` executable `make test` builds before the Go tests.
func accordBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv("ACCORD_BIN")
	if path == "" {
		path = filepath.Join("..", "..", "target", "release", "accord")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("no accord binary at %s (cargo build --release, or set ACCORD_BIN): %v", abs, err)
	}
	return abs
}

// TestTLSTokensAndPrefixRights runs three `accord server` processes with mutual TLS and an
// access file, and checks what a token client, a certificate client and a stranger may do.
func TestTLSTokensAndPrefixRights(t *testing.T) {
	binary := accordBinary(t)
	dir := t.TempDir()
	tls := filepath.Join(dir, "tls")
	out, err := exec.Command(binary, "certs", "--dir", tls, "node1", "node2", "node3", "client").CombinedOutput()
	if err != nil {
		t.Fatalf("accord certs: %v\n%s", err, out)
	}
	const alice = "alice-token-0123456789abcdef"
	access := filepath.Join(dir, "access.conf")
	text := "role app write:kv:app/ read:kv:shared/\n" +
		"user alice token:" + alice + " app\n" +
		"user reader cert:client read-only\n"
	for i := 1; i <= 3; i++ {
		text += fmt.Sprintf("user node%d cert:node%d member\n", i, i)
	}
	if err := os.WriteFile(access, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs := freePorts(t, 3)
	for i := range addrs {
		var peers []string
		for j, a := range addrs {
			if j != i {
				peers = append(peers, fmt.Sprintf("%d=%s", j+1, a))
			}
		}
		id := i + 1
		cmd := exec.Command(binary, "server", "--id", fmt.Sprint(id), "--listen", addrs[i],
			"--peers", strings.Join(peers, ","), "--data-dir", filepath.Join(dir, fmt.Sprintf("n%d", id)),
			"--tick-ms", "20", "--access", access,
			"--tls-ca", filepath.Join(tls, "ca.pem"),
			"--tls-cert", filepath.Join(tls, fmt.Sprintf("node%d.pem", id)),
			"--tls-key", filepath.Join(tls, fmt.Sprintf("node%d-key.pem", id)))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ca := filepath.Join(tls, "ca.pem")

	token, err := Connect(ctx, addrs, WithTLS(ca, "", ""), WithToken(alice), WithCallTimeout(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer token.Close()
	if _, err := token.KV().Put(ctx, []byte("app/x"), []byte("1")); err != nil {
		t.Fatalf("alice writes under app/: %v", err)
	}
	if _, err := token.KV().Put(ctx, []byte("other/x"), []byte("1")); !errors.Is(err, ErrPermission) ||
		!strings.Contains(err.Error(), "alice may not write") {
		t.Fatalf("alice wrote outside her prefix: %v", err)
	}

	reader, err := Connect(ctx, addrs, WithTLS(ca, filepath.Join(tls, "client.pem"), filepath.Join(tls, "client-key.pem")))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if value, found, _, err := reader.KV().Get(ctx, []byte("app/x")); err != nil || !found || string(value) != "1" {
		t.Fatalf("the read-only certificate reads: %q %v %v", value, found, err)
	}
	if _, err := reader.KV().Put(ctx, []byte("app/x"), []byte("2")); !errors.Is(err, ErrPermission) {
		t.Fatalf("the read-only certificate wrote: %v", err)
	}

	stranger, err := Connect(ctx, addrs, WithTLS(ca, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if _, _, _, err := stranger.KV().Get(ctx, []byte("app/x")); !errors.Is(err, ErrPermission) ||
		!strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("a client without credentials was served: %v", err)
	}
	if _, err := Connect(ctx, addrs, WithTLS(filepath.Join(dir, "missing.pem"), "", "")); !errors.Is(err, ErrConfig) {
		t.Fatalf("a missing CA file: %v", err)
	}
}
