package query

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"

	"github.com/nodekit/nodekit/pkg/awscfg"
)

// actionableError is an AWS error rewritten as a sentence that says what to
// do; the SDK's own text (operation, status, request id) is kept behind
// Unwrap for anyone who inspects it, but not printed.
type actionableError struct {
	msg string
	err error
}

func (e *actionableError) Error() string { return e.msg }
func (e *actionableError) Unwrap() error { return e.err }

// describe turns the CloudWatch Logs errors an SRE can act on into an
// actionableError; doing says what was being done ("filtering log events
// in G"), for errors that stay as they are.
func describe(err error, doing, group, region string) error {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return fmt.Errorf("%s: %w", doing, err)
	}
	var msg string
	switch class := awscfg.Classify(err); {
	case ae.ErrorCode() == "ResourceNotFoundException":
		if noStreams(err) {
			msg = fmt.Sprintf("no log stream of %q matches (%s): %s", group, doing, ae.ErrorMessage())
			break
		}
		msg = fmt.Sprintf("log group %q does not exist in %s (check --cluster, --log-group and AWS_REGION)", group, region)
	case ae.ErrorCode() == "InvalidParameterException":
		msg = fmt.Sprintf("CloudWatch Logs rejected the request %s: %s", doing, ae.ErrorMessage())
	case ae.ErrorCode() == "MalformedQueryException":
		msg = "invalid Logs Insights query: " + ae.ErrorMessage()
	case class == awscfg.Throttled:
		attempts := ""
		var mae *retry.MaxAttemptsError
		if errors.As(err, &mae) {
			attempts = fmt.Sprintf(" %d times", mae.Attempt)
		}
		msg = fmt.Sprintf("CloudWatch Logs throttled the request%s (%s); try again later or narrow the query (--since, -n, POD)", attempts, doing)
	case class == awscfg.AccessDenied:
		msg = fmt.Sprintf("AWS refused the credentials %s: %s: %s", doing, ae.ErrorCode(), ae.ErrorMessage())
	default:
		return fmt.Errorf("%s: %w", doing, err)
	}
	return &actionableError{msg: msg, err: err}
}

// oneLine keeps an error to a single line for the terminal (SDK errors can
// carry newlines from a response body) while keeping it inspectable with
// errors.As (agent.UsageError decides the exit code).
type oneLine struct{ err error }

func (e oneLine) Error() string {
	return strings.Join(strings.Fields(e.err.Error()), " ")
}

func (e oneLine) Unwrap() error { return e.err }

// noStreams reports CloudWatch's answer for a search over streams that do
// not exist, as opposed to a missing log group.
func noStreams(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ResourceNotFoundException" &&
		strings.Contains(strings.ToLower(ae.ErrorMessage()), "log stream")
}
