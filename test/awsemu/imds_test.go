package awsemu

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// fakeClock is a settable clock for token and credential expiry.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestIMDSWithSDKClient(t *testing.T) {
	t.Parallel()
	e, url := startEmu(t, Options{Region: "eu-west-1", IMDS: IMDSConfig{RequireV2: true, UserData: "#!/bin/sh\necho hi\n", InstanceID: "i-0abc"}})
	client := imds.New(imds.Options{Endpoint: url})
	ctx := testContext(t)

	region, err := client.GetRegion(ctx, &imds.GetRegionInput{})
	if err != nil || region.Region != "eu-west-1" {
		t.Fatalf("GetRegion = %+v, %v", region, err)
	}
	md, err := client.GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(md.Content); string(b) != "i-0abc" {
		t.Errorf("instance-id = %q", b)
	}
	info, err := client.GetIAMInfo(ctx, &imds.GetIAMInfoInput{})
	if err != nil {
		t.Fatal(err)
	}
	if info.InstanceProfileArn != "arn:aws:iam::123456789012:instance-profile/"+DefaultNodeRole {
		t.Errorf("InstanceProfileArn = %q", info.InstanceProfileArn)
	}
	doc, err := client.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil {
		t.Fatal(err)
	}
	if doc.Region != "eu-west-1" || doc.InstanceID != "i-0abc" || doc.AccountID != "123456789012" || doc.AvailabilityZone != "eu-west-1a" {
		t.Errorf("identity document = %+v", doc.InstanceIdentityDocument)
	}
	ud, err := client.GetUserData(ctx, &imds.GetUserDataInput{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(ud.Content); string(b) != "#!/bin/sh\necho hi\n" {
		t.Errorf("user-data = %q", b)
	}

	reqs := e.IMDSRequests()
	var puts, gets int
	for _, r := range reqs {
		switch {
		case r.Method == http.MethodPut && r.Path == "/latest/api/token":
			puts++
		case r.Method == http.MethodGet:
			gets++
			if !r.HadToken || r.Status != http.StatusOK {
				t.Errorf("GET %s: token %v status %d; the SDK should use its IMDSv2 token", r.Path, r.HadToken, r.Status)
			}
		}
	}
	if puts != 1 || gets != 5 {
		t.Errorf("%d token PUTs and %d GETs, want 1 (reused) and 5: %+v", puts, gets, reqs)
	}
}

// TestIMDSDefaultConfigChain proves the SDK's default chain finds region and
// node-role credentials in the emulator, the way an agent on a node does.
func TestIMDSDefaultConfigChain(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_EC2_METADATA_DISABLED"} {
		if os.Getenv(v) != "" {
			t.Skipf("%s is set in the environment and would take precedence over IMDS in the default chain", v)
		}
	}
	e, url := startEmu(t, Options{Region: "ap-southeast-2"})
	ctx := testContext(t)
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
		// The credential chain's IMDS client honours this option (the
		// programmatic AWS_EC2_METADATA_SERVICE_ENDPOINT)...
		config.WithEC2IMDSEndpoint(url),
		// ...but the region lookup builds its own client unless given one:
		// without it the SDK would ask the real 169.254.169.254.
		config.WithEC2IMDSRegion(func(o *config.UseEC2IMDSRegion) {
			o.Client = imds.New(imds.Options{Endpoint: url})
		}),
	)
	if err != nil {
		t.Fatalf("LoadDefaultConfig: %v", err)
	}
	if cfg.Region != "ap-southeast-2" {
		t.Errorf("region %q, want the emulator's ap-southeast-2", cfg.Region)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatalf("retrieving credentials: %v", err)
	}
	role, session, ok := e.RoleForAccessKey(creds.AccessKeyID)
	if !ok || role != e.NodeRoleArn() || session != "i-0123456789abcdef0" {
		t.Errorf("credentials %s belong to %q/%q (%v), want the node role", creds.AccessKeyID, role, session, ok)
	}
	if !creds.CanExpire || creds.Expires.Sub(testNow) != 6*time.Hour {
		t.Errorf("credentials expire %v (CanExpire %v), want clock + 6h", creds.Expires, creds.CanExpire)
	}
	if creds.SessionToken == "" {
		t.Error("no session token")
	}
	var credGets int
	for _, r := range e.IMDSRequests() {
		if r.Path == "/latest/meta-data/iam/security-credentials/"+DefaultNodeRole && r.Status == http.StatusOK {
			credGets++
		}
	}
	if credGets != 1 {
		t.Errorf("%d credential GETs reached the emulator, want 1", credGets)
	}
}

func TestIMDSWireRules(t *testing.T) {
	t.Parallel()
	clock := newFakeClock(testNow)
	e, url := startEmu(t, Options{Now: clock.Now})

	do := func(t *testing.T, method, path string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	token := func(t *testing.T, ttl string) string {
		t.Helper()
		resp, body := do(t, http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": ttl})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("token PUT: %d", resp.StatusCode)
		}
		return body
	}

	t.Run("token_ttl", func(t *testing.T) {
		for _, tc := range []struct {
			ttl  string
			want int
		}{{"1", 200}, {"21600", 200}, {"0", 400}, {"21601", 400}, {"", 400}, {"abc", 400}, {"-5", 400}} {
			hdr := map[string]string{}
			if tc.ttl != "" {
				hdr["X-aws-ec2-metadata-token-ttl-seconds"] = tc.ttl
			}
			resp, body := do(t, http.MethodPut, "/latest/api/token", hdr)
			if resp.StatusCode != tc.want {
				t.Errorf("ttl %q: status %d, want %d", tc.ttl, resp.StatusCode, tc.want)
			}
			if tc.want == 200 {
				if got := resp.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"); got != tc.ttl {
					t.Errorf("ttl %q echoed as %q", tc.ttl, got)
				}
				if body == "" {
					t.Errorf("ttl %q: empty token", tc.ttl)
				}
			}
		}
	})
	t.Run("token_refused_through_proxy", func(t *testing.T) {
		resp, _ := do(t, http.MethodPut, "/latest/api/token", map[string]string{
			"X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "10.0.0.5"})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("status %d, want 403", resp.StatusCode)
		}
	})
	t.Run("token_is_put_only", func(t *testing.T) {
		if resp, _ := do(t, http.MethodGet, "/latest/api/token", nil); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET token: %d, want 405", resp.StatusCode)
		}
	})
	t.Run("token_expiry_and_v2_mode", func(t *testing.T) {
		tok := token(t, "60")
		withTok := map[string]string{"X-aws-ec2-metadata-token": tok}
		check := func(name string, hdr map[string]string, want int) {
			t.Helper()
			if resp, _ := do(t, http.MethodGet, "/latest/meta-data/instance-id", hdr); resp.StatusCode != want {
				t.Errorf("%s: %d, want %d", name, resp.StatusCode, want)
			}
		}
		check("v1 tokenless", nil, 200)
		check("valid token", withTok, 200)
		check("bogus token", map[string]string{"X-aws-ec2-metadata-token": "bogus"}, 401)
		e.SetIMDSRequireV2(true)
		check("v2 required, tokenless", nil, 401)
		check("v2 required, token", withTok, 200)
		clock.Advance(60 * time.Second)
		check("expired token", withTok, 401)
		e.SetIMDSRequireV2(false)
		check("v1 again", nil, 200)
	})
	t.Run("tree", func(t *testing.T) {
		for _, tc := range []struct {
			path, want string
			status     int
		}{
			{"/latest/meta-data/iam/security-credentials/", DefaultNodeRole, 200},
			{"/latest/meta-data/iam/security-credentials", DefaultNodeRole, 200},
			{"/latest/meta-data/iam/", "info\nsecurity-credentials/", 200},
			{"/latest/meta-data/placement/region", "us-east-1", 200},
			{"/latest/meta-data/placement/availability-zone", "us-east-1a", 200},
			{"/latest/meta-data/local-ipv4", "10.0.0.10", 200},
			{"/latest/meta-data/nope", "", 404},
			{"/latest/user-data", "", 404},
		} {
			resp, body := do(t, http.MethodGet, tc.path, nil)
			if resp.StatusCode != tc.status || (tc.status == 200 && body != tc.want) {
				t.Errorf("%s = %d %q, want %d %q", tc.path, resp.StatusCode, body, tc.status, tc.want)
			}
		}
		_, index := do(t, http.MethodGet, "/latest/meta-data/", nil)
		for _, want := range []string{"iam/", "placement/", "instance-id", "local-ipv4", "ami-id"} {
			if !strings.Contains("\n"+index+"\n", "\n"+want+"\n") {
				t.Errorf("meta-data/ index %q lacks %q", index, want)
			}
		}
	})
	t.Run("credentials_document", func(t *testing.T) {
		_, body := do(t, http.MethodGet, "/latest/meta-data/iam/security-credentials/"+DefaultNodeRole, nil)
		var c map[string]string
		if err := json.Unmarshal([]byte(body), &c); err != nil {
			t.Fatalf("credentials %q: %v", body, err)
		}
		if c["Code"] != "Success" || c["Type"] != "AWS-HMAC" || !strings.HasPrefix(c["AccessKeyId"], "ASIA") || c["SecretAccessKey"] == "" || c["Token"] == "" {
			t.Errorf("credentials document %v", c)
		}
		for _, k := range []string{"Expiration", "LastUpdated"} {
			if _, err := time.Parse("2006-01-02T15:04:05Z", c[k]); err != nil {
				t.Errorf("%s %q not in 2006-01-02T15:04:05Z form", k, c[k])
			}
		}
		// Rotated an hour later, like EC2.
		clock.Advance(61 * time.Minute)
		_, body2 := do(t, http.MethodGet, "/latest/meta-data/iam/security-credentials/"+DefaultNodeRole, nil)
		var c2 map[string]string
		_ = json.Unmarshal([]byte(body2), &c2)
		if c2["AccessKeyId"] == c["AccessKeyId"] {
			t.Error("node credentials not rotated after an hour")
		}
	})
	t.Run("recorded", func(t *testing.T) {
		var sawXFF, sawCreds bool
		for _, r := range e.IMDSRequests() {
			sawXFF = sawXFF || (r.XForwardedFor == "10.0.0.5" && r.Status == http.StatusForbidden)
			sawCreds = sawCreds || strings.HasPrefix(r.Path, "/latest/meta-data/iam/security-credentials/")
		}
		if !sawXFF || !sawCreds {
			t.Errorf("recorded requests lack the proxied token PUT (%v) or a credentials GET (%v)", sawXFF, sawCreds)
		}
	})
}

// TestIMDSHandlerExposesOnlyIMDS checks that the handler meant for
// 169.254.169.254 does not serve the admin API or STS.
func TestIMDSHandlerExposesOnlyIMDS(t *testing.T) {
	t.Parallel()
	e := New(Options{})
	// No request leaves the process: the handler is called directly.
	req, _ := http.NewRequest(http.MethodGet, "http://169.254.169.254/_awsemu/counts", nil)
	rec := newRecorder()
	e.IMDSHandler().ServeHTTP(rec, req)
	if rec.status != http.StatusNotFound {
		t.Errorf("admin API via IMDSHandler: %d, want 404", rec.status)
	}
	req, _ = http.NewRequest(http.MethodPost, "http://169.254.169.254/", strings.NewReader("Action=GetCallerIdentity&Version=2011-06-15"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec = newRecorder()
	e.IMDSHandler().ServeHTTP(rec, req)
	if rec.status != http.StatusMethodNotAllowed || strings.Contains(rec.body.String(), "GetCallerIdentity") {
		t.Errorf("STS via IMDSHandler: %d %q, want 405", rec.status, rec.body.String())
	}
}

// recorder is a minimal ResponseWriter for handler-level tests.
type recorder struct {
	hdr    http.Header
	status int
	body   strings.Builder
}

func newRecorder() *recorder                    { return &recorder{hdr: http.Header{}} }
func (r *recorder) Header() http.Header         { return r.hdr }
func (r *recorder) WriteHeader(code int)        { r.status = code }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
