package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var checksumLine = regexp.MustCompile(`(?m)^checksum: 0x[0-9a-f]{16}$`)

func runGo(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if rc := run(args, &out, &errb); rc != 0 {
		t.Fatalf("layer_loop %v: exit %d: %s", args, rc, errb.String())
	}
	lines := checksumLine.FindAllString(out.String(), -1)
	if len(lines) != 1 {
		t.Fatalf("layer_loop %v: want exactly one checksum line, got output:\n%s", args, out.String())
	}
	return lines[0]
}

// cExample finds the C example (built by CMake) to compare with, if there is one.
func cExample() string {
	var dirs []string
	if d := os.Getenv("MHC_BUILD_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, filepath.Join("..", "..", "..", "build"))
	for _, d := range dirs {
		p := filepath.Join(d, "examples", "c", "layer_loop")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// The same checksum as the C example for the same arguments (LAYER_LOOP.md).
func TestChecksumMatchesC(t *testing.T) {
	bin := cExample()
	if bin == "" {
		t.Skip("C example not found (set MHC_BUILD_DIR); scripts/test.d/40-go.sh compares them")
	}
	for _, args := range [][]string{
		nil,
		{"--layers", "0"},
		{"--tokens", "0"},
		{"--tokens", "3", "--hidden", "100", "--layers", "3"},
		{"--seed", "7", "--tokens", "1", "--hidden", "1", "--layers", "1"},
	} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("%s %v: %v", bin, args, err)
		}
		want := checksumLine.FindString(string(out))
		if got := runGo(t, args...); got != want || want == "" {
			t.Errorf("layer_loop %v: Go %q, C %q", args, got, want)
		}
	}
}

func TestDeterministicAndSeeded(t *testing.T) {
	a := runGo(t, "--tokens", "2", "--hidden", "16", "--layers", "1")
	if b := runGo(t, "--tokens", "2", "--hidden", "16", "--layers", "1"); a != b {
		t.Errorf("two runs differ: %s vs %s", a, b)
	}
	if c := runGo(t, "--tokens", "2", "--hidden", "16", "--layers", "1", "--seed", "43"); c == a {
		t.Errorf("the seed does not change the checksum")
	}
	// T = 0: FNV-1a of no bytes is the offset basis.
	if z := runGo(t, "--tokens", "0"); z != "checksum: 0xcbf29ce484222325" {
		t.Errorf("T=0: %s", z)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"--cuda"}, {"--tokens", "-1"}, {"--hidden", "0"}, {"--bogus"},
		{"--tokens", "x"}, {"extra"}} {
		var out, errb bytes.Buffer
		if rc := run(args, &out, &errb); rc != 2 {
			t.Errorf("layer_loop %v: exit %d, want 2", args, rc)
		}
		if strings.Contains(out.String(), "checksum") {
			t.Errorf("layer_loop %v printed a checksum", args)
		}
	}
}
