// Package e2e holds nodekit's end-to-end tests, built with the e2e tag: each
// runs on the test bed (test/testbed) — network namespaces, a real
// kube-apiserver and the AWS emulator — and needs root.
package e2e
