// Package manifests holds the tests of what is deployed: the kustomize tree under config/, the
// Dockerfile and .dockerignore. They render config/ with kubectl's kustomize, apply the result
// to a real API server (server-side dry run, and the RBAC for real so that the API server's
// authorizer can be asked what each ServiceAccount may do), and check the image build against
// the Makefile and the binary. The package has no non-test code.
package manifests
