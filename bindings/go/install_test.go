package accord

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// userProgram is a program of a user outside this repository: a single-member cluster, a
// write and a read.
const userProgram = `package main

import (
	"context"
	"fmt"
	"os"

	accord "github.com/accord-engine/accord/bindings/go"
)

func main() {
	ctx := context.Background()
	node, err := accord.StartNode(ctx, accord.NodeConfig{ID: 1, Listen: os.Args[1], DataDir: os.Args[2]})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	defer node.Stop()
	client, err := node.Client()
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	defer client.Close()
	if _, err := client.KV().Put(ctx, []byte("k"), []byte("installed")); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	value, _, _, err := client.KV().Get(ctx, []byte("k"))
	fmt.Println(string(value), err)
}
`

// A user outside this repository: the library installed under a prefix (`make install`),
// the package as `go get` fetches it (its own directory only), the build flags from
// pkg-config, as the README documents.
func TestAProgramOutsideTheRepositoryBuildsAgainstTheInstalledLibrary(t *testing.T) {
	if _, err := exec.LookPath("pkg-config"); err != nil {
		t.Fatal("pkg-config is needed (make deps installs it)")
	}
	tmp := t.TempDir()
	prefix := filepath.Join(tmp, "prefix")
	run := func(dir string, env []string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("../..", nil, "make", "--no-print-directory", "install-files", "PREFIX="+prefix)

	// What the module cache holds: this directory's package files and go.mod, nothing else.
	module := filepath.Join(tmp, "accord-go")
	if err := os.MkdirAll(module, 0o755); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("*.go")
	files = append(files, "go.mod")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(module, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	user := filepath.Join(tmp, "user")
	if err := os.MkdirAll(user, 0o755); err != nil {
		t.Fatal(err)
	}
	goMod := "module example.com/user\n\ngo 1.22\n\n" +
		"require github.com/accord-engine/accord/bindings/go v0.1.0\n\n" +
		"replace github.com/accord-engine/accord/bindings/go => " + module + "\n"
	if err := os.WriteFile(filepath.Join(user, "go.mod"), []byte(goMod), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(user, "main.go"), []byte(userProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	pkgConfig := []string{"PKG_CONFIG_PATH=" + filepath.Join(prefix, "lib", "pkgconfig")}
	cflags := strings.TrimSpace(run(user, pkgConfig, "pkg-config", "--cflags", "accord"))
	libs := strings.TrimSpace(run(user, pkgConfig, "pkg-config", "--libs", "accord"))
	run(user, []string{"CGO_CFLAGS=" + cflags,
		"CGO_LDFLAGS=" + libs + " -Wl,-rpath," + filepath.Join(prefix, "lib")},
		"go", "build", "-o", "user", ".")
	out := run(user, nil, "./user", freePorts(t, 1)[0], filepath.Join(tmp, "data"))
	if !strings.Contains(out, "installed <nil>") {
		t.Fatalf("the program said: %s", out)
	}
	ldd := run(user, nil, "ldd", "./user")
	if !strings.Contains(ldd, filepath.Join(prefix, "lib", "libaccord.so")) {
		t.Fatalf("the program is not linked to the installed library:\n%s", ldd)
	}
}
