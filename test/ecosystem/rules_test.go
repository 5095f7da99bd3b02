package ecosystem_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// promtool returns the promtool that hack/tools/build.sh built (PROMTOOL overrides it).
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL"); p != "" {
		return p
	}
	out, err := exec.Command(filepath.Join(env.Root, "hack", "tools", "build.sh"), "promtool").Output()
	if err != nil {
		t.Fatalf("building promtool: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// ruleGroups writes the groups of config/prometheus/rules.yaml as a plain Prometheus rule file
// into dir and returns its rules.
func ruleGroups(t *testing.T, dir string) []map[string]any {
	t.Helper()
	var rule struct {
		Spec struct {
			Groups []struct {
				Name  string           `json:"name"`
				Rules []map[string]any `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	data := readFile(t, "config", "prometheus", "rules.yaml")
	if err := yaml.Unmarshal(data, &rule); err != nil {
		t.Fatal(err)
	}
	groups, err := yaml.Marshal(rule.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), groups, 0o644); err != nil {
		t.Fatal(err)
	}
	var rules []map[string]any
	for _, g := range rule.Spec.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

// TestAlertRules runs `promtool check rules` and `promtool test rules` (testdata/alerts_test.yaml:
// series that fire and series that must not) on the shipped rules.
func TestAlertRules(t *testing.T) {
	tool := promtool(t)
	dir := t.TempDir()
	ruleGroups(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), readFile(t, "test", "ecosystem", "testdata", "alerts_test.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(tool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestAlertsDocumented: every alert has a severity, a summary, a description and a runbook_url
// that points at a heading of the README's Runbooks section, and the promtool tests cover it.
func TestAlertsDocumented(t *testing.T) {
	rules := ruleGroups(t, t.TempDir())
	readme := string(readFile(t, "README.md"))
	_, runbooks, ok := strings.Cut(readme, "\n## Runbooks\n")
	if !ok {
		t.Fatal("README.md has no Runbooks section")
	}
	runbooks, _, _ = strings.Cut(runbooks, "\n## ")
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^### (.+)$`).FindAllStringSubmatch(runbooks, -1) {
		anchors[strings.ToLower(strings.ReplaceAll(strings.TrimSpace(m[1]), " ", "-"))] = true
	}
	tests := string(readFile(t, "test", "ecosystem", "testdata", "alerts_test.yaml"))
	const prefix = "https://github.com/kommo-operator/kommo-operator/blob/main/README.md#"
	for _, r := range rules {
		name, _ := r["alert"].(string)
		if name == "" {
			continue
		}
		ann, _ := r["annotations"].(map[string]any)
		labels, _ := r["labels"].(map[string]any)
		if labels["severity"] == nil || ann["summary"] == nil || ann["description"] == nil {
			t.Errorf("%s lacks a severity, summary or description", name)
		}
		url, _ := ann["runbook_url"].(string)
		anchor, ok := strings.CutPrefix(url, prefix)
		if !ok || !anchors[anchor] || anchor != strings.ToLower(name) {
			t.Errorf("%s: runbook_url %q is not %s%s, a heading of the README's Runbooks", name, url, prefix, strings.ToLower(name))
		}
		if !strings.Contains(tests, "alertname: "+name+"\n") {
			t.Errorf("testdata/alerts_test.yaml does not test %s", name)
		}
	}
}
