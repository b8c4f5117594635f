package accord

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestGuideExamplesRun builds and runs every program of docs/guides/go.md against this
// package, so that the guide cannot rot without a test failing.
func TestGuideExamplesRun(t *testing.T) {
	guide, err := os.ReadFile(filepath.Join("..", "..", "docs", "guides", "go.md"))
	if err != nil {
		t.Fatal(err)
	}
	examples := regexp.MustCompile("(?ms)^```go\n(.*?)^```").FindAllSubmatch(guide, -1)
	if len(examples) < 3 {
		t.Fatalf("the guide has %d Go examples", len(examples))
	}
	here, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for i, example := range examples {
		dir := t.TempDir()
		goMod := "module example.com/guide\n\ngo 1.22\n\n" +
			"require github.com/accord-engine/accord/bindings/go v0.1.0\n\n" +
			"replace github.com/accord-engine/accord/bindings/go => " + here + "\n"
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(goMod), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "main.go"), example[1], 0o644); err != nil {
			t.Fatal(err)
		}
		build := exec.Command("go", "build", "-o", "example", ".")
		build.Dir = dir
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("example %d does not build: %v\n%s\n%s", i+1, err, out, example[1])
		}
		run := exec.Command(filepath.Join(dir, "example"))
		run.Dir = dir
		if out, err := run.CombinedOutput(); err != nil {
			t.Fatalf("example %d failed: %v\n%s", i+1, err, out)
		}
	}
}
