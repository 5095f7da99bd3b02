package stack

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Binaries are the programs the stack runs.
type Binaries struct {
	// Operator is the kommo-operator binary, built exactly as `make build` builds it.
	Operator string
	// Simulator is hack/kommosim.
	Simulator string
}

// Build builds the operator with the Makefile's own `build` recipe (`make build
// LOCALBIN=dir`, so the e2e tests run the very binary CI and the Dockerfile build) and
// the simulator into dir. Without make it falls back to the same go build command.
func Build(ctx context.Context, root, dir string) (Binaries, error) {
	b := Binaries{Operator: filepath.Join(dir, "kommo-operator"), Simulator: filepath.Join(dir, "kommosim")}
	goBin := goTool()
	if makeBin, err := exec.LookPath("make"); err == nil {
		if err := run(ctx, root, buildEnv(), makeBin, "-s", "--no-print-directory", "build", "LOCALBIN="+dir, "GO="+goBin); err != nil {
			return b, err
		}
	} else {
		env := append(buildEnv(), "CGO_ENABLED=0")
		if err := run(ctx, root, env, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", b.Operator, "."); err != nil {
			return b, err
		}
	}
	if err := run(ctx, root, buildEnv(), goBin, "build", "-o", b.Simulator, "./hack/kommosim"); err != nil {
		return b, err
	}
	return b, nil
}

// goTool is the go command that runs this program's build, when known.
func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); isFile(p) {
			return p
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// buildEnv drops the variables of an enclosing make (`make test` runs the e2e tests):
// its jobserver descriptors do not reach this child make.
func buildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// run runs a build command in its own process group, all of which is killed when ctx
// ends.
func run(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error {
		signalGroup(cmd.Process.Pid, sigKill)
		return nil
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
	return nil
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
