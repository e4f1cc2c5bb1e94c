package purity

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// core are the pure packages (relative to the module root). The I/O
// adapters beside them (predictor/promhistory, reading PromQL) are their
// own packages and not listed.
var core = []string{"scheduler", "predictor", "models", "controller"}

// forbiddenImports do I/O (or reach the process and the network).
var forbiddenImports = map[string]string{
	"os": "I/O", "os/exec": "I/O", "os/signal": "I/O", "io/ioutil": "I/O", "io/fs": "I/O", "net": "I/O", "net/http": "I/O",
	"syscall": "I/O", "crypto/rand": "randomness", "log": "I/O", "log/slog": "I/O", "database/sql": "I/O",
	"google.golang.org/grpc": "I/O", "go.etcd.io/etcd/client/v3": "I/O",
}

// clockCalls read or wait on the clock.
var clockCalls = map[string]bool{"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true, "AfterFunc": true,
	"Tick": true, "NewTimer": true, "NewTicker": true}

// seededRand are the math/rand constructors that take a seed: allowed.
var seededRand = map[string]bool{"New": true, "NewPCG": true, "NewChaCha8": true, "NewSource": true, "NewZipf": true}

// TestCorePackagesArePure parses every non-test file of the core packages
// and fails on an import that does I/O, a call that reads the clock, or a
// call of global randomness (math/rand's package-level functions).
func TestCorePackagesArePure(t *testing.T) {
	root := filepath.Join("..", "..")
	for _, pkg := range core {
		dir := filepath.Join(root, pkg)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		files := 0
		for _, e := range ents {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				continue
			}
			files++
			for _, v := range violations(t, filepath.Join(dir, name)) {
				t.Errorf("%s/%s: %s", pkg, name, v)
			}
		}
		if files == 0 {
			t.Fatalf("package %s has no Go files at %s", pkg, dir)
		}
	}
}

func violations(t *testing.T, path string) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	names := map[string]string{} // local name -> import path
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		if why, bad := forbiddenImports[p]; bad {
			out = append(out, "imports "+p+" ("+why+")")
		}
		local := p[strings.LastIndex(p, "/")+1:]
		if p == "math/rand/v2" {
			local = "rand"
		}
		if im.Name != nil {
			local = im.Name.Name
		}
		names[local] = p
	}
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		id, ok := sel.X.(*ast.Ident)
		if !ok {
			return true
		}
		switch names[id.Name] {
		case "time":
			if clockCalls[sel.Sel.Name] {
				out = append(out, fset.Position(sel.Pos()).String()+": time."+sel.Sel.Name+" reads the clock; take now as an input")
			}
		case "math/rand", "math/rand/v2":
			if !seededRand[sel.Sel.Name] && ast.IsExported(sel.Sel.Name) && !isType(sel.Sel.Name) {
				out = append(out, fset.Position(sel.Pos()).String()+": rand."+sel.Sel.Name+" is global randomness; take a seed")
			}
		}
		return true
	})
	return out
}

// isType reports whether a math/rand identifier names a type (rand.Rand,
// rand.Source), which only a seeded constructor can give a value of.
func isType(name string) bool {
	switch name {
	case "Rand", "Source", "PCG", "ChaCha8", "Zipf":
		return true
	}
	return false
}

// TestTheCheckCatchesViolations: the checker flags what it must (a test
// that cannot fail is a defect).
func TestTheCheckCatchesViolations(t *testing.T) {
	dir := t.TempDir()
	src := `package x

import (
	"math/rand/v2"
	"os"
	"time"
)

func f() (int, time.Time, *os.File) {
	r := rand.New(rand.NewPCG(1, 2))
	_ = r
	return rand.IntN(3), time.Now(), nil
}
`
	path := filepath.Join(dir, "x.go")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(violations(t, path), "\n")
	for _, want := range []string{"imports os", "time.Now", "rand.IntN"} {
		if !strings.Contains(got, want) {
			t.Errorf("violations %q lack %q", got, want)
		}
	}
	if strings.Contains(got, "rand.New") || strings.Contains(got, "rand.NewPCG") {
		t.Errorf("seeded constructors flagged: %q", got)
	}
}
