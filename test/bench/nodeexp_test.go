package main

import (
	"slices"
	"testing"
)

// Shapes of the two --help outputs: Go's flag package for nodeexp, kingpin
// for node_exporter.
const (
	nodeexpHelpFixture = `Usage of nodeexp:
  -collector.arp
    	Enable the arp collector (default: enabled).
  -collector.cpu
    	Enable the cpu collector (default: enabled).
  -collector.pods
    	Enable the pods collector (default: enabled).
  -collector.only_ours
    	Enable the only_ours collector (default: enabled).
  -collector.netdev.device-exclude string
    	Regexp of net devices to exclude. (default "^(veth.*|cali.*)$")
  -collector.ours.option string
    	Not in node_exporter. (default "x")
  -collector.filesystem.mount-timeout duration
    	How long to wait. (default 5s)
  -no-collector.arp
    	Disable the arp collector.
`
	neHelpFixture = `      --[no-]collector.arp       Enable the arp collector (default: enabled).
      --[no-]collector.cpu       Enable the cpu collector (default: enabled).
      --[no-]collector.wifi      Enable the wifi collector (default:
                                 disabled).
      --collector.netdev.device-exclude=COLLECTOR.NETDEV.DEVICE-EXCLUDE
      --collector.filesystem.mount-timeout=5s
`
)

func TestCollectorFlags(t *testing.T) {
	shared, ours, theirs := collectorFlags(nodeexpHelpFixture, neHelpFixture)
	if want := []string{"arp", "cpu"}; !slices.Equal(shared, want) {
		t.Errorf("shared = %v, want %v", shared, want)
	}
	if want := []string{"--no-collector.pods", "--no-collector.only_ours"}; !slices.Equal(ours, want) {
		t.Errorf("nodeexp args = %v, want %v", ours, want)
	}
	want := []string{"--collector.disable-defaults", "--collector.arp", "--collector.cpu", "--collector.netdev.device-exclude=^(veth.*|cali.*)$"}
	if !slices.Equal(theirs, want) {
		t.Errorf("node_exporter args = %q, want %q", theirs, want)
	}
}

func TestCollectorFlagsEmpty(t *testing.T) {
	shared, ours, theirs := collectorFlags("", "")
	if len(shared) != 0 || len(ours) != 0 || !slices.Equal(theirs, []string{"--collector.disable-defaults"}) {
		t.Errorf("got %v %v %v from empty help", shared, ours, theirs)
	}
}
