package stack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kommo-operator/kommo-operator/test/testenv"
)

// minSecretLen: shorter values are not distinctive enough to scan for.
const minSecretLen = 8

// remember adds a secret the stack made or saw to those the leak scan looks for.
func (s *Stack) remember(kind, value string) {
	if len(value) < minSecretLen {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.secrets[value]; !ok {
		s.secrets[value] = kind
	}
}

// Secrets returns every secret known to the stack, value → what it is: the client and
// channel secrets, each code it fetched, each token it read from a token Secret, each
// revoke signature it sent, and, when the simulator serves GET /_sim/secrets (a JSON
// array), everything the simulator issued.
func (s *Stack) Secrets(ctx context.Context) map[string]string {
	var issued []string
	if err := s.simGET(ctx, "/_sim/secrets", nil, &issued); err == nil {
		for _, v := range issued {
			s.remember("secret issued by the simulator", v)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.secrets))
	for k, v := range s.secrets {
		out[k] = v
	}
	return out
}

// SimulatorListsSecrets reports whether the simulator serves GET /_sim/secrets.
func (s *Stack) SimulatorListsSecrets(ctx context.Context) bool {
	var issued []string
	return s.simGET(ctx, "/_sim/secrets", nil, &issued) == nil
}

// Leak is a secret found where it must not be. It never holds the secret.
type Leak struct {
	Where  string // e.g. the log file
	Kind   string // what the secret is
	Length int
}

func (l Leak) String() string {
	return fmt.Sprintf("%s contains a %s (%d characters)", l.Where, l.Kind, l.Length)
}

// FindLeaks looks for every known secret in text.
func FindLeaks(where, text string, secrets map[string]string) []Leak {
	var leaks []Leak
	for value, kind := range secrets {
		if strings.Contains(text, value) {
			leaks = append(leaks, Leak{Where: where, Kind: kind, Length: len(value)})
		}
	}
	sort.Slice(leaks, func(i, j int) bool { return leaks[i].Kind < leaks[j].Kind })
	return leaks
}

// ScanLogs looks for every known secret in the controllers' and the webhooks' logs. It
// also returns how many bytes of log it read: a scan of nothing proves nothing.
func (s *Stack) ScanLogs(ctx context.Context) (leaks []Leak, scanned int, err error) {
	secrets := s.Secrets(ctx)
	for _, f := range s.componentLogs() {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, scanned, err
		}
		scanned += len(data)
		leaks = append(leaks, FindLeaks(f, string(data), secrets)...)
	}
	return leaks, scanned, nil
}

// Redact replaces every known secret in text, for diagnostics printed on failure.
func (s *Stack) Redact(text string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for value, kind := range s.secrets {
		text = strings.ReplaceAll(text, value, "[REDACTED "+kind+"]")
	}
	return text
}

// LogTails returns the last n lines of each process's log, secrets redacted.
func (s *Stack) LogTails(n int) string {
	var b strings.Builder
	for _, f := range append(s.componentLogs(), s.SimulatorLog) {
		fmt.Fprintf(&b, "==> %s <==\n%s\n", f, s.Redact(testenv.Tail(f, n)))
	}
	return b.String()
}

// Denials returns the lines of the controller's and the webhook's logs where the API
// server refused something ("forbidden"): the RBAC of config/rbac was not enough.
// Secrets are redacted and long lines cut.
func (s *Stack) Denials() ([]string, error) {
	var out []string
	for _, f := range s.componentLogs() {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(strings.ToLower(line), "forbidden") {
				line = s.Redact(line)
				if len(line) > 600 {
					line = line[:600] + "…"
				}
				out = append(out, filepath.Base(f)+": "+line)
			}
		}
	}
	return out, nil
}
