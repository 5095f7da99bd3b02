package manifests_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// instruction is one Dockerfile instruction with its line continuations joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string
	line int
}

// stage is one FROM and the instructions under it.
type stage struct {
	from, name string
	flags      []string // --platform=...
	instrs     []instruction
}

// parseDockerfile reads the stages of a Dockerfile: comments dropped, continuations joined.
func parseDockerfile(data []byte) ([]stage, error) {
	var stages []stage
	var cur *instruction
	var instrs []instruction
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == nil) {
			continue
		}
		if cur == nil {
			cmd, args, _ := strings.Cut(trimmed, " ")
			cur = &instruction{cmd: strings.ToUpper(cmd), line: i + 1}
			trimmed = strings.TrimSpace(args)
		}
		if cont, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.args += cont + " "
			continue
		}
		cur.args = strings.Join(strings.Fields(cur.args+trimmed), " ")
		instrs = append(instrs, *cur)
		cur = nil
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: unterminated continuation", cur.line)
	}
	for _, in := range instrs {
		if in.cmd == "FROM" {
			fields := strings.Fields(in.args)
			s := stage{}
			for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
				s.flags, fields = append(s.flags, fields[0]), fields[1:]
			}
			switch {
			case len(fields) == 1:
				s.from = fields[0]
			case len(fields) == 3 && strings.EqualFold(fields[1], "AS"):
				s.from, s.name = fields[0], fields[2]
			default:
				return nil, fmt.Errorf("line %d: FROM %s", in.line, in.args)
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			if in.cmd == "ARG" {
				continue
			}
			return nil, fmt.Errorf("line %d: %s before FROM", in.line, in.cmd)
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
	}
	return stages, nil
}

// shellFields splits one simple shell command into words the way sh does for quotes and
// backslashes. It refuses lists and pipes: a build step must be one command.
func shellFields(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words, inWord = append(words, w.String()), false
				w.Reset()
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			w.WriteString(s[i+1 : i+1+j])
			i, inWord = i+1+j, true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				w.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			w.WriteByte(s[i])
			inWord = true
		case c == ';' || c == '|' || c == '&' || c == '`' || c == '<' || c == '>':
			return nil, fmt.Errorf("%q is not one simple command", s)
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// command is a simple command: leading VAR=value assignments, then the argument vector.
type command struct {
	env  map[string]string
	argv []string
}

func parseCommand(s string) (command, error) {
	words, err := shellFields(s)
	if err != nil {
		return command{}, err
	}
	cmd := command{env: map[string]string{}}
	assignment := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
	for len(words) > 0 && assignment.MatchString(words[0]) {
		k, v, _ := strings.Cut(words[0], "=")
		cmd.env[k] = v
		words = words[1:]
	}
	cmd.argv = words
	return cmd, nil
}

// output returns the value of -o.
func (c command) output() string {
	if i := slices.Index(c.argv, "-o"); i >= 0 && i+1 < len(c.argv) {
		return c.argv[i+1]
	}
	return ""
}

// withOutput returns the command with -o replaced by out.
func (c command) withOutput(out string) command {
	argv := slices.Clone(c.argv)
	if i := slices.Index(argv, "-o"); i >= 0 && i+1 < len(argv) {
		argv[i+1] = out
	}
	return command{env: maps.Clone(c.env), argv: argv}
}

// makeRecipe returns the recipe of target in the Makefile, its variables expanded.
func makeRecipe(t *testing.T, target string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(env.Root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"CURDIR": env.Root}
	assign := regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*(\?=|:=|=)\s*(.*)$`)
	var recipe []string
	inTarget := false
	for _, line := range strings.Split(string(data), "\n") {
		if m := assign.FindStringSubmatch(line); m != nil {
			if _, set := vars[m[1]]; !set || m[2] != "?=" {
				vars[m[1]] = strings.TrimSpace(m[3])
			}
		}
		if strings.HasPrefix(line, target+":") {
			inTarget = true
			continue
		}
		if inTarget {
			if !strings.HasPrefix(line, "\t") {
				break
			}
			recipe = append(recipe, strings.TrimPrefix(strings.TrimSpace(line), "@"))
		}
	}
	if !inTarget {
		t.Fatalf("the Makefile has no %s target", target)
	}
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for i := range recipe {
		for n := 0; ref.MatchString(recipe[i]); n++ {
			if n > 10 {
				t.Fatalf("make variables too deep in %q", recipe[i])
			}
			recipe[i] = ref.ReplaceAllStringFunc(recipe[i], func(m string) string {
				name := ref.FindStringSubmatch(m)[1]
				v, ok := vars[name]
				if !ok {
					t.Fatalf("make variable %s used by %q is not defined", name, target)
				}
				return v
			})
		}
		recipe[i] = strings.ReplaceAll(recipe[i], "$$", "$")
	}
	return recipe
}

// dockerfile is the repository's Dockerfile, parsed, with its builder's build command.
type dockerfile struct {
	builder, final stage
	build          command
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(env.Root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages, err := parseDockerfile(data)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	if len(stages) != 2 {
		t.Fatalf("Dockerfile has %d stages, want 2 (builder, final)", len(stages))
	}
	df := dockerfile{builder: stages[0], final: stages[1]}
	var builds []instruction
	for _, in := range df.builder.instrs {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			builds = append(builds, in)
		}
	}
	if len(builds) != 1 {
		t.Fatalf("the builder stage has %d RUN ... go build, want 1", len(builds))
	}
	run := builds[0].args
	for strings.HasPrefix(run, "--") { // RUN flags: --mount=..., --network=...
		_, run, _ = strings.Cut(run, " ")
	}
	if df.build, err = parseCommand(run); err != nil {
		t.Fatalf("Dockerfile line %d: %v", builds[0].line, err)
	}
	return df
}

// TestDockerfileBuildsLikeTheMakefile: the image's binary is built by exactly the Makefile's
// `build` recipe (same environment, flags and package), for the target platform.
func TestDockerfileBuildsLikeTheMakefile(t *testing.T) {
	df := readDockerfile(t)
	recipe := makeRecipe(t, "build")
	if len(recipe) != 1 {
		t.Fatalf("the Makefile's build recipe has %d lines, want 1: %q", len(recipe), recipe)
	}
	mk, err := parseCommand(recipe[0])
	if err != nil {
		t.Fatalf("Makefile build: %v", err)
	}
	docker := df.build.withOutput(path.Base(df.build.output()))
	mk = mk.withOutput(path.Base(mk.output()))
	if mk.output() != "kommo-operator" {
		t.Errorf("the Makefile builds %q, want kommo-operator", mk.output())
	}
	for name, arg := range map[string]string{"GOOS": "TARGETOS", "GOARCH": "TARGETARCH"} {
		if v := docker.env[name]; !strings.HasPrefix(v, "${"+arg) && v != "$"+arg {
			t.Errorf("the Dockerfile's build sets %s=%q, want it from the build argument %s", name, v, arg)
		}
		delete(docker.env, name)
		if !hasInstruction(df.builder, "ARG", arg) {
			t.Errorf("the builder stage does not declare ARG %s", arg)
		}
	}
	if !maps.Equal(docker.env, mk.env) {
		t.Errorf("build environment differs: Dockerfile %v, Makefile %v", docker.env, mk.env)
	}
	if !slices.Equal(docker.argv, mk.argv) {
		t.Errorf("build command differs:\n Dockerfile: %q\n Makefile:   %q", docker.argv, mk.argv)
	}
	if !slices.Contains(df.build.argv, "-trimpath") || df.build.env["CGO_ENABLED"] != "0" {
		t.Errorf("the build must be static and reproducible (CGO_ENABLED=0, -trimpath): %q", df.build.argv)
	}
}

// TestDockerfileStages checks the builder (Go version of go.mod, module layer before the
// sources, native platform) and the final stage (distroless nonroot, the user the Deployments
// run as, the entrypoint).
func TestDockerfileStages(t *testing.T) {
	df := readDockerfile(t)

	gomod, err := os.ReadFile(filepath.Join(env.Root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	if want := "golang:" + string(m[1]); df.builder.from != want {
		t.Errorf("builder FROM %s, want %s (go.mod says go %s)", df.builder.from, want, m[1])
	}
	if !slices.Contains(df.builder.flags, "--platform=$BUILDPLATFORM") {
		t.Errorf("the builder should run on $BUILDPLATFORM and cross-compile: FROM flags %q", df.builder.flags)
	}
	// go.mod and go.sum, then `go mod download`, before any source: the module layer is cached.
	var order []string
	for _, in := range df.builder.instrs {
		if in.cmd == "COPY" || in.cmd == "RUN" {
			order = append(order, in.cmd+" "+in.args)
		}
	}
	if len(order) < 3 || order[0] != "COPY go.mod go.sum ./" || order[1] != "RUN go mod download" {
		t.Errorf("the builder must start with COPY go.mod go.sum ./ and RUN go mod download, got %q", order)
	}

	if !regexp.MustCompile(`^gcr\.io/distroless/static:nonroot(@sha256:[0-9a-f]{64})?$`).MatchString(df.final.from) {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static:nonroot", df.final.from)
	}
	last := func(cmd string) string {
		v := ""
		for _, in := range df.final.instrs {
			if in.cmd == cmd {
				v = in.args
			}
		}
		return v
	}
	if got := last("USER"); got != "65532:65532" {
		t.Errorf("final USER %q, want 65532:65532", got)
	}
	var entrypoint []string
	if err := json.Unmarshal([]byte(last("ENTRYPOINT")), &entrypoint); err != nil || !slices.Equal(entrypoint, []string{"/kommo-operator"}) {
		t.Errorf("ENTRYPOINT %s, want [\"/kommo-operator\"] (exec form)", last("ENTRYPOINT"))
	}
	want := fmt.Sprintf("--from=%s %s /kommo-operator", df.builder.name, df.build.output())
	if df.builder.name == "" || !hasInstruction(df.final, "COPY", want) {
		t.Errorf("the final stage must COPY %s (the builder's -o)", want)
	}

	// The Deployments run as the image's user and rely on its entrypoint.
	_, objs := render(t, "default")
	for _, name := range []string{controllerName, webhookName} {
		var d appsv1.Deployment
		find(t, objs, "Deployment", name).decode(t, &d)
		psc := d.Spec.Template.Spec.SecurityContext
		if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != 65532 || psc.RunAsGroup == nil || *psc.RunAsGroup != 65532 {
			t.Errorf("%s does not run as 65532:65532, the image's USER", name)
		}
	}
}

// hasInstruction reports whether the stage has the instruction cmd args.
func hasInstruction(s stage, cmd, args string) bool {
	return slices.ContainsFunc(s.instrs, func(in instruction) bool { return in.cmd == cmd && in.args == args })
}

// ignorePattern is one line of .dockerignore, compiled with Docker's semantics: paths relative
// to the context root, `*` and `?` within one path element, `**` across elements, a pattern
// matching a directory excluding everything below it, `!` re-including, the last match winning.
type ignorePattern struct {
	re        *regexp.Regexp
	reinclude bool
}

func parseDockerignore(data []byte) ([]ignorePattern, error) {
	var patterns []ignorePattern
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := ignorePattern{}
		if rest, ok := strings.CutPrefix(line, "!"); ok {
			p.reinclude, line = true, strings.TrimSpace(rest)
		}
		line = strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(line)), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(line); i++ {
			switch c := line[i]; c {
			case '*':
				if i+1 < len(line) && line[i+1] == '*' {
					i++
					if i+1 < len(line) && line[i+1] == '/' {
						i++
						re.WriteString("(.*/)?")
					} else {
						re.WriteString(".*")
					}
				} else {
					re.WriteString("[^/]*")
				}
			case '?':
				re.WriteString("[^/]")
			case '[':
				return nil, fmt.Errorf(".dockerignore: character classes are not supported by this test: %q", line)
			case '\\':
				if i+1 < len(line) {
					i++
					re.WriteString(regexp.QuoteMeta(line[i : i+1]))
				}
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		p.re = regexp.MustCompile(re.String())
		patterns = append(patterns, p)
	}
	return patterns, nil
}

// ignored reports whether .dockerignore keeps the file rel (slash-separated) out of the context.
func ignored(patterns []ignorePattern, rel string) bool {
	out := false
	for _, p := range patterns {
		for q := rel; q != "." && q != "/" && q != ""; q = path.Dir(q) {
			if p.re.MatchString(q) {
				out = !p.reinclude
				break
			}
		}
	}
	return out
}

// buildContext lists the files (slash-separated, relative) that Docker sends as the context.
func buildContext(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(env.Root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := parseDockerignore(data)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	err = filepath.WalkDir(env.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(env.Root, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			if rel == ".git" || rel == "bin" { // large, and checked to be excluded below
				return fs.SkipDir
			}
			return nil
		}
		if !ignored(patterns, rel) {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{".git/HEAD", "bin/kommo-operator", "bin/k8s/1.37.1/kube-apiserver", "test/testenv/testenv.go",
		"hack/envtest/build.sh", "config/default/kustomization.yaml", "kommo/client_test.go", "kommo/testdata/x.json", "x.kubeconfig"} {
		if !ignored(patterns, rel) {
			t.Errorf(".dockerignore does not exclude %s", rel)
		}
	}
	for _, rel := range []string{"go.mod", "go.sum", "main.go", "api/v1alpha1/groupversion_info.go"} {
		if ignored(patterns, rel) {
			t.Errorf(".dockerignore excludes %s, which the image needs", rel)
		}
	}
	return files
}

// TestDockerBuildContext builds the binary the way the Dockerfile's builder stage does, from
// only what .dockerignore lets into the context and the COPY lines copy, with the Dockerfile's
// own build command, then checks that the binary knows every flag the manifests pass it.
// Without a Docker engine this is the proof that the image builds. -short stops after `go list`.
func TestDockerBuildContext(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	df := readDockerfile(t)
	files := buildContext(t)
	root := t.TempDir() // the builder's file system
	workdir := "/"
	for _, in := range df.builder.instrs {
		switch in.cmd {
		case "WORKDIR":
			workdir = path.Join(workdir, in.args)
		case "COPY", "ADD":
			args := strings.Fields(in.args)
			for len(args) > 0 && strings.HasPrefix(args[0], "--") {
				if strings.HasPrefix(args[0], "--from") {
					t.Fatalf("line %d: the builder copies from another stage", in.line)
				}
				args = args[1:]
			}
			if len(args) < 2 {
				t.Fatalf("line %d: %s %s", in.line, in.cmd, in.args)
			}
			dest := args[len(args)-1]
			toDir := strings.HasSuffix(dest, "/") || dest == "."
			dest = filepath.Join(root, filepath.FromSlash(path.Join(workdir, dest)))
			if err := dockerCopy(files, args[:len(args)-1], dest, toDir); err != nil {
				t.Fatalf("Dockerfile line %d: %v", in.line, err)
			}
		}
	}

	target := map[string]string{"TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH}
	goEnv := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	for k, v := range df.build.env {
		goEnv = append(goEnv, k+"="+os.Expand(v, func(name string) string {
			name, def, _ := strings.Cut(name, ":-")
			if v := target[name]; v != "" {
				return v
			}
			return def
		}))
	}
	dir := filepath.Join(root, workdir)
	run := func(argv ...string) {
		t.Helper()
		cmd := exec.Command(goTool, argv[1:]...)
		cmd.Dir, cmd.Env = dir, goEnv
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("in the image's build context: %s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	// Every package of the binary is in the context (fast, and the whole check under -short).
	run("go", "list", "-deps", "-test=false", ".")
	if testing.Short() {
		t.Skip("-short: not building the binary")
	}
	if df.build.argv[0] != "go" {
		t.Fatalf("the build runs %q, not go", df.build.argv[0])
	}
	bin := filepath.Join(root, df.build.output())
	run(df.build.withOutput(bin).argv...)

	// The binary accepts every flag the manifests pass to it.
	manifestFlags := map[string]map[string]bool{"controller": {}, "webhook": {}}
	for _, dir := range []string{"default", "examples/ingress"} {
		_, objs := render(t, dir)
		for _, name := range []string{controllerName, webhookName} {
			var d appsv1.Deployment
			find(t, objs, "Deployment", name).decode(t, &d)
			args := d.Spec.Template.Spec.Containers[0].Args
			if len(args) == 0 || manifestFlags[args[0]] == nil {
				t.Fatalf("config/%s: %s runs no known subcommand: %q", dir, name, args)
			}
			for _, a := range args[1:] {
				flag, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
				manifestFlags[args[0]][flag] = true
			}
		}
	}
	defined := regexp.MustCompile(`(?m)^ +--?([A-Za-z0-9][A-Za-z0-9_.-]*)`) // "  -name" (flag) or "      --name" (pflag)
	for _, sub := range []string{"controller", "webhook"} {
		t.Run(sub+" flags", func(t *testing.T) {
			var out bytes.Buffer
			cmd := exec.Command(bin, sub, "-h")
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if strings.Contains(out.String(), "not built yet") {
				t.Skipf("the %s subcommand is not built yet", sub)
			}
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Fatal(err)
			}
			flags := map[string]bool{}
			for _, m := range defined.FindAllStringSubmatch(out.String(), -1) {
				flags[m[1]] = true
			}
			for _, f := range slices.Sorted(maps.Keys(manifestFlags[sub])) {
				if !flags[f] {
					t.Errorf("the manifests pass --%s, which `kommo-operator %s` does not define (it has %v)", f, sub, slices.Sorted(maps.Keys(flags)))
				}
			}
		})
	}
}

// dockerCopy does what COPY srcs... dest does with the context files: a source is a file, a
// directory (its contents are copied) or a pattern over one directory level. toDir: dest
// ended in "/"; several sources or a pattern also make it a directory.
func dockerCopy(context []string, srcs []string, dest string, toDir bool) error {
	toDir = toDir || len(srcs) > 1 || strings.ContainsAny(strings.Join(srcs, ""), "*?[")
	for _, src := range srcs {
		src = strings.TrimPrefix(path.Clean(src), "/")
		n := 0
		for _, f := range context {
			var target string
			switch {
			case f == src:
				target = dest
				if toDir {
					target = filepath.Join(dest, path.Base(f))
				}
			case strings.HasPrefix(f, src+"/"):
				target = filepath.Join(dest, filepath.FromSlash(strings.TrimPrefix(f, src+"/")))
			default:
				if ok, _ := path.Match(src, f); ok && path.Dir(f) == path.Dir(src) {
					target = filepath.Join(dest, path.Base(f))
					break
				}
				continue
			}
			n++
			data, err := os.ReadFile(filepath.Join(env.Root, filepath.FromSlash(f)))
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(target, data, 0o644); err != nil {
				return err
			}
		}
		if n == 0 {
			return fmt.Errorf("COPY source %q matches nothing in the build context (after .dockerignore)", src)
		}
	}
	return nil
}
