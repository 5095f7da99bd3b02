package stack

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/kommo-operator/kommo-operator/test/testenv"
)

// process is one child process of the stack, in its own process group, its stdout and
// stderr captured to a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has been reaped
	err     error         // its exit status, valid after done
	stopped bool          // Stop asked it to end: an exit is expected
	mu      sync.Mutex
}

// startProcess starts bin with args and this process's environment plus env, output
// appended to logPath. When firstLine is not nil, stdout goes through a pipe and its
// first line is sent to firstLine (the rest, and stderr, to the log file).
func startProcess(name, logPath, bin string, env, args []string, firstLine chan<- string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(childEnv(), env...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Stderr = logFile
	var stdout io.ReadCloser
	if firstLine != nil {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			logFile.Close()
			return nil, err
		}
	} else {
		cmd.Stdout = logFile
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	var copied sync.WaitGroup
	if stdout != nil {
		copied.Add(1)
		go func() {
			defer copied.Done()
			r := bufio.NewReader(stdout)
			line, err := r.ReadString('\n')
			if err == nil {
				firstLine <- strings.TrimSpace(line)
			}
			close(firstLine)
			_, _ = logFile.WriteString(line)
			_, _ = io.Copy(logFile, r)
		}()
	}
	go func() {
		copied.Wait() // Wait closes the pipe: read it to the end first
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// childEnv is this process's environment without what would change the children's
// behaviour behind the stack's back.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "KUBECONFIG", "POD_NAMESPACE":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	if p == nil {
		return true, nil
	}
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop ends the process group: SIGTERM, a second SIGTERM after a second (controller-
// runtime exits at once on the second signal, skipping the webhook's unready grace
// period, which only matters behind a load balancer), SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	if done, _ := p.exited(); done {
		return
	}
	pid := p.cmd.Process.Pid
	signalGroup(pid, sigTerm)
	select {
	case <-p.done:
		return
	case <-time.After(min(time.Second, grace)):
	}
	signalGroup(pid, sigTerm)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	signalGroup(pid, sigKill)
	<-p.done
}

// waitHTTP polls url until it answers 200, the process exits or the deadline passes.
func (p *process) waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	last := "no answer yet"
	for {
		if done, err := p.exited(); done {
			return fmt.Errorf("%s exited before it was ready (%v); log %s:\n%s", p.name, err, p.logPath, p.tail(40))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s within %s (last: %s); log %s:\n%s", p.name, url, timeout, last, p.logPath, p.tail(40))
		case <-p.done:
		case <-time.After(100 * time.Millisecond): // poll interval
		}
	}
}

// tail returns the last n lines of the process's log.
func (p *process) tail(n int) string { return testenv.Tail(p.logPath, n) }

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment ago. Callers
// that lose the race retry with another (see Stack.startComponent).
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// errAddrInUse tells whether a process's log says it lost a port race.
func addrInUse(logPath string) bool {
	return strings.Contains(testenv.Tail(logPath, 20), "address already in use")
}
