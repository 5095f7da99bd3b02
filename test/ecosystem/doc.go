// Package ecosystem holds the tests of what the operator ships for other tools: the Helm
// chart (charts/kommo-operator), the alert rules (config/prometheus/rules.yaml) and the Argo CD
// health checks (config/argocd). It has no non-test code.
package ecosystem
