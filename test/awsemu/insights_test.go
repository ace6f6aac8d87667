package awsemu

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

func TestInsightsQueries(t *testing.T) {
	t.Parallel()
	_, url := startEmu(t, Options{})
	client := newLogsClient(url, 1)
	ctx := testContext(t)
	group := "/aws/containerinsights/test/application"
	now := seedK8sLogs(ctx, t, client, group)
	startSec, endSec := now/1000-3600, now/1000+3600

	// rows renders results as "f=v f=v; ..." without @ptr.
	rows := func(res [][]types.ResultField) string {
		var out []string
		for _, row := range res {
			var cells []string
			for _, c := range row {
				if *c.Field != "@ptr" {
					cells = append(cells, *c.Field+"="+*c.Value)
				}
			}
			out = append(out, strings.Join(cells, " "))
		}
		return strings.Join(out, "; ")
	}
	tests := []struct {
		name, query string
		want        string
		wantMatched float64
	}{
		{
			name:  "fields_filter_sort_limit",
			query: "fields kubernetes.pod_name, status\n| filter kubernetes.namespace_name = \"shop\" and status >= 300\n| sort @timestamp desc\n| limit 3",
			want:  "kubernetes.pod_name=web-2 status=300; kubernetes.pod_name=web-1 status=300; kubernetes.pod_name=web-2 status=400",
			// 2 shop streams x statuses 300,400,300.
			wantMatched: 6,
		},
		{
			name:        "stats_by",
			query:       "stats count(*) as n by kubernetes.namespace_name | sort n desc",
			want:        "kubernetes.namespace_name=shop n=10; kubernetes.namespace_name=infra n=5",
			wantMatched: 15,
		},
		{
			name:        "regex_like_and_count",
			query:       "filter @message like /ERROR=true/ | stats count(*)",
			want:        "count(*)=9",
			wantMatched: 9,
		},
		{
			name:        "or_not_in",
			query:       `fields @logStream | filter (status = 400 or kubernetes.pod_name in ["db-0"]) and not kubernetes.pod_name like "web-2" | sort @logStream asc | limit 2`,
			want:        "@logStream=db-0_infra_pg; @logStream=db-0_infra_pg",
			wantMatched: 6,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start, err := client.StartQuery(ctx, &cloudwatchlogs.StartQueryInput{
				LogGroupName: aws.String(group), StartTime: aws.Int64(startSec), EndTime: aws.Int64(endSec), QueryString: aws.String(tc.query),
			})
			if err != nil {
				t.Fatalf("StartQuery: %v", err)
			}
			res, err := client.GetQueryResults(ctx, &cloudwatchlogs.GetQueryResultsInput{QueryId: start.QueryId})
			if err != nil {
				t.Fatalf("GetQueryResults: %v", err)
			}
			if res.Status != types.QueryStatusComplete {
				t.Errorf("status %s", res.Status)
			}
			if got := rows(res.Results); got != tc.want {
				t.Errorf("results\n got %s\nwant %s", got, tc.want)
			}
			if res.Statistics.RecordsMatched != tc.wantMatched || res.Statistics.RecordsScanned != 15 {
				t.Errorf("statistics %+v, want matched %v of 15", *res.Statistics, tc.wantMatched)
			}
		})
	}

	for _, bad := range []string{`parse @message "a * b" as x`, `sort status`, `stats avg(status)`, `filter status ~ 3`, `limit 0`} {
		_, err := client.StartQuery(ctx, &cloudwatchlogs.StartQueryInput{
			LogGroupName: aws.String(group), StartTime: aws.Int64(startSec), EndTime: aws.Int64(endSec), QueryString: aws.String(bad),
		})
		if code, _, _ := apiError(err); code != "MalformedQueryException" {
			t.Errorf("query %q: %v, want MalformedQueryException", bad, err)
		}
	}
	_, err := client.GetQueryResults(ctx, &cloudwatchlogs.GetQueryResultsInput{QueryId: aws.String("nope")})
	if code, _, _ := apiError(err); code != "ResourceNotFoundException" {
		t.Errorf("unknown query id: %v", err)
	}
	_, err = client.StartQuery(ctx, &cloudwatchlogs.StartQueryInput{
		LogGroupName: aws.String("/missing"), StartTime: aws.Int64(startSec), EndTime: aws.Int64(endSec), QueryString: aws.String("fields @message"),
	})
	if code, msg, _ := apiError(err); code != "ResourceNotFoundException" || msg != msgGroupNotFound {
		t.Errorf("missing group: %v", err)
	}
}

func FuzzInsightsQuery(f *testing.F) {
	f.Add(`fields a | filter (a = 1 or b like /x|y/) and not c in [1, "2"] | sort a desc | limit 3`)
	f.Add(`stats count(*) as n by a, b | sort n asc`)
	rec := queryRecord{"a": "1", "b": "xy", "@ts": "5", "@message": `{"a":1}`}
	f.Fuzz(func(t *testing.T, q string) {
		if pq, err := parseQuery(q); err == nil {
			pq.run([]queryRecord{rec, {"a": "2"}}, 10)
		}
	})
}
