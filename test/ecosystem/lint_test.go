package ecosystem_test

import (
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
)

// TestChartLint runs the linter `helm lint --strict` runs (the Helm SDK's, so no helm binary
// is built), for the default and the non-default values: any warning fails.
func TestChartLint(t *testing.T) {
	kv, err := common.ParseKubeVersion("v1.37.1")
	if err != nil {
		t.Fatal(err)
	}
	for name, vals := range map[string]map[string]any{"default": nil, "non-default": nonDefault()} {
		t.Run(name, func(t *testing.T) {
			linter := lint.RunAll(chartDir(), vals, releaseNamespace, lint.WithKubeVersion(kv))
			for _, m := range linter.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m.Error())
				} else {
					t.Logf("helm lint: %s", m.Error())
				}
			}
		})
	}
}
