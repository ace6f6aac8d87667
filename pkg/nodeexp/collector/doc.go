// Package collector holds nodeexp's node collectors, one per file as
// node_exporter lays them out: each reads /proc and /sys (through
// prometheus/procfs where it can) and reports node_exporter's families with
// its names, types, help and labels, so that the node-mixin alerts, the
// kubernetes-mixin rules and the "Node Exporter Full" dashboard work
// unchanged. Config carries node_exporter's flag names; New builds the
// enabled collectors for the exporter in package nodeexp.
package collector
