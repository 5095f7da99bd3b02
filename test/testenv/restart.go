package testenv

import "fmt"

// StopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL after envtest's stop
// timeout) and leaves etcd running: an API server outage, as during an upgrade of the
// control plane.
func (e *Env) StopAPIServer() error {
	if err := e.env.ControlPlane.APIServer.Stop(); err != nil {
		return fmt.Errorf("stopping kube-apiserver: %w", err)
	}
	return nil
}

// StartAPIServer starts kube-apiserver again after StopAPIServer, on the same address
// with the same certificates and etcd, so that every client and kubeconfig keeps working;
// it returns once the API server is healthy.
func (e *Env) StartAPIServer() error {
	if err := e.env.ControlPlane.APIServer.Start(); err != nil {
		return fmt.Errorf("starting kube-apiserver again: %w", err)
	}
	return nil
}
