package query

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"golang.org/x/time/rate"
)

// insightsQuery runs one Logs Insights query: StartQuery, then
// GetQueryResults until the query is Complete, bounded by timeout. A query
// abandoned (timeout, Ctrl-C) is stopped so it does not keep scanning, and
// billing, in the background.
type insightsQuery struct {
	api        logsAPI
	limiter    *rate.Limiter
	after      func(time.Duration) <-chan time.Time
	group      string
	region     string
	query      string
	start, end time.Time
	poll       time.Duration
	timeout    time.Duration
}

func (q *insightsQuery) run(ctx context.Context, stdout, stderr io.Writer, format string) error {
	if err := q.limiter.Wait(ctx); err != nil {
		return err
	}
	started, err := q.api.StartQuery(ctx, &cloudwatchlogs.StartQueryInput{
		LogGroupName: aws.String(q.group),
		QueryString:  aws.String(q.query),
		// Insights takes seconds; widen to whole seconds so the window
		// covers at least what was asked.
		StartTime: aws.Int64(q.start.Unix()),
		EndTime:   aws.Int64(q.end.Add(time.Second - 1).Unix()),
	})
	if err != nil {
		return describe(err, "starting a Logs Insights query on "+q.group, q.group, q.region)
	}
	id := aws.ToString(started.QueryId)
	res, err := q.wait(ctx, id)
	if err != nil {
		// Best effort with a fresh context: ctx may be what ended.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, _ = q.api.StopQuery(sctx, &cloudwatchlogs.StopQueryInput{QueryId: aws.String(id)})
		cancel()
		return err
	}
	if err := printTable(stdout, res.Results, format); err != nil {
		return err
	}
	if s := res.Statistics; s != nil {
		fmt.Fprintf(stderr, "# %d rows; %.0f records matched of %.0f scanned (%.0f bytes)\n",
			len(res.Results), s.RecordsMatched, s.RecordsScanned, s.BytesScanned)
	}
	return nil
}

var errInsightsTimeout = errors.New("Logs Insights query timed out")

func (q *insightsQuery) wait(ctx context.Context, id string) (*cloudwatchlogs.GetQueryResultsOutput, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, q.timeout, errInsightsTimeout)
	defer cancel()
	for {
		if err := q.limiter.Wait(ctx); err != nil {
			return nil, q.ctxErr(ctx, id, err)
		}
		res, err := q.api.GetQueryResults(ctx, &cloudwatchlogs.GetQueryResultsInput{QueryId: aws.String(id)})
		if err != nil {
			if ctx.Err() != nil {
				return nil, q.ctxErr(ctx, id, err)
			}
			return nil, describe(err, "reading the results of Logs Insights query "+id, q.group, q.region)
		}
		switch res.Status {
		case types.QueryStatusComplete:
			return res, nil
		case types.QueryStatusScheduled, types.QueryStatusRunning, "":
		default: // Failed, Cancelled, Timeout, Unknown
			return nil, fmt.Errorf("Logs Insights query %s on %s ended with status %s", id, q.group, res.Status)
		}
		select {
		case <-ctx.Done():
			return nil, q.ctxErr(ctx, id, ctx.Err())
		case <-q.after(q.poll):
		}
	}
}

func (q *insightsQuery) ctxErr(ctx context.Context, id string, err error) error {
	if errors.Is(context.Cause(ctx), errInsightsTimeout) {
		return fmt.Errorf("Logs Insights query %s on %s did not finish within --insights-timeout %s (stopped it)", id, q.group, q.timeout)
	}
	return err
}
