package naming

import "testing"

func TestNames(t *testing.T) {
	v := Values{Cluster: "prod", Node: "ip-10-0-0-1", Namespace: "shop", Pod: "web-1", Container: "app", ContainerID: "abc123"}
	for _, tc := range []struct {
		name, got, want string
	}{
		{"default_group", Group(DefaultGroup, v), "/aws/containerinsights/prod/application"},
		{"default_stream", Stream(DefaultStream, v), "web-1_shop_app-abc123"},
		{"group_per_namespace", Group("/k8s/{cluster}/{namespace}", v), "/k8s/prod/shop"},
		{"stream_cleaned", Stream("{node}:{pod}*", v), "ip-10-0-0-1_web-1_"},
		{"unknown_placeholder_kept", Group("/x/{zone}", v), "/x/{zone}"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}
