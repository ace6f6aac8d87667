package awsemu

import (
	"testing"
	"time"
)

// TestMotoAgreesOnPutLogEvents runs the PutLogEvents table against moto.
// Cases moto does not implement the same way are listed in motoSkips with
// the reason, so the comparison stays honest.
func TestMotoAgreesOnPutLogEvents(t *testing.T) {
	t.Parallel()
	url := StartMoto(t)
	var cases []putCase
	for _, tc := range putLogEventsCases {
		if tc.exactClock {
			continue
		}
		if why, ok := motoSkips[tc.name]; ok {
			t.Logf("not compared with moto: %s: %s", tc.name, why)
			continue
		}
		cases = append(cases, tc)
	}
	runPutLogEventsCases(t, newLogsClient(url, 1), time.Now, cases)
}

func TestMotoAgreesOnAssumeRole(t *testing.T) {
	t.Parallel()
	url := StartMoto(t)
	var cases []stsCase
	for _, tc := range assumeRoleCases {
		if why, ok := motoSkips["sts/"+tc.name]; ok {
			t.Logf("not compared with moto: %s: %s", tc.name, why)
			continue
		}
		cases = append(cases, tc)
	}
	runAssumeRoleCases(t, newSTSClient(url, staticCreds), time.Now, cases)
}

// motoSkips names table cases where moto (5.x) knowingly differs from the
// real service, with why. Filled from running the tables against moto.
var motoSkips = map[string]string{
	"batch_one_byte_over":              "moto does not enforce the 1,048,576-byte batch limit",
	"batch_over_by_per_event_overhead": "moto does not enforce the 1,048,576-byte batch limit",
	"10001_events":                     "moto does not apply the API's request validation (list length)",
	"no_events":                        "moto does not apply the API's request validation (list length)",
	"empty_message":                    "moto does not apply the API's request validation (message length)",
	"event_one_byte_over_max_size":     "moto does not enforce the per-event size limit",
	"span_24h_plus_1ms":                "moto does not enforce the 24-hour batch span",
	"too_old": "moto answers tooOldLogEventEndIndex as the last too-old index; the API reference " +
		"calls the field exclusive (a count), which the emulator follows",
	"older_than_retention":          "moto does not reject events older than the group's retention",
	"sts/duration_899":              "moto does not validate DurationSeconds",
	"sts/duration_43201":            "moto does not validate DurationSeconds",
	"sts/session_name_1_char":       "moto only checks RoleSessionName's maximum length",
	"sts/session_name_bad_char":     "moto does not check RoleSessionName's characters",
	"sts/external_id_1_char":        "moto does not validate ExternalId",
	"sts/external_id_1225_chars":    "moto does not validate ExternalId",
	"errors/create_stream_twice":    "moto answers every ResourceAlreadyExistsException with the log-group message",
	"errors/delete_missing_stream":  "moto answers a missing stream here with its generic log-group message",
	"errors/get_missing_stream":     "moto answers a missing stream here with its generic log-group message",
	"errors/retention_not_in_enum":  "moto does not validate retentionInDays",
	"errors/bad_group_name":         "moto does not validate log group names",
	"errors/stream_name_with_colon": "moto does not validate log stream names",
	"sts/role_arn_short":            "moto does not validate RoleArn",
}

// TestMotoAgreesOnResourceErrors runs the not-found / already-exists table
// against moto.
func TestMotoAgreesOnResourceErrors(t *testing.T) {
	t.Parallel()
	url := StartMoto(t)
	runResourceErrorCases(t, newLogsClient(url, 1), time.Now(), func(name string) (string, bool) {
		why, ok := motoSkips["errors/"+name]
		return why, ok
	})
}
