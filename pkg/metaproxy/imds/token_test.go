package imds

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

type fixedClock struct{ t time.Time }

func (c *fixedClock) now() time.Time { return c.t }

func TestParseTTL(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "1", want: time.Second}, {in: "21600", want: 6 * time.Hour}, {in: "300", want: 5 * time.Minute},
		{in: "", bad: true}, {in: "0", bad: true}, {in: "21601", bad: true}, {in: "-1", bad: true},
		{in: "+5", bad: true}, {in: "1.5", bad: true}, {in: " 5", bad: true}, {in: "99999999999999999999", bad: true},
	} {
		got, err := ParseTTL(tt.in)
		if tt.bad != (err != nil) || got != tt.want {
			t.Errorf("ParseTTL(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestTokens(t *testing.T) {
	clk := &fixedClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	tokens, err := NewTokens(clk.now)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewTokens(clk.now)
	ip := netip.MustParseAddr("10.1.2.3")
	tok := tokens.Issue(ip, "uid-a", time.Minute)
	tests := []struct {
		name    string
		tok     string
		ip      netip.Addr
		uid     string
		advance time.Duration
		want    error
	}{
		{name: "valid", tok: tok, ip: ip, uid: "uid-a"},
		{name: "v4-mapped address is the same pod", tok: tok, ip: netip.MustParseAddr("::ffff:10.1.2.3"), uid: "uid-a"},
		{name: "other IP", tok: tok, ip: netip.MustParseAddr("10.1.2.4"), uid: "uid-a", want: ErrTokenOtherPod},
		{name: "same IP, new pod", tok: tok, ip: ip, uid: "uid-b", want: ErrTokenOtherPod},
		{name: "expired", tok: tok, ip: ip, uid: "uid-a", advance: time.Minute, want: ErrTokenExpired},
		{name: "other key", tok: other.Issue(ip, "uid-a", time.Minute), ip: ip, uid: "uid-a", want: ErrTokenInvalid},
		{name: "garbage", tok: "not a token", ip: ip, uid: "uid-a", want: ErrTokenInvalid},
		{name: "truncated", tok: tok[:len(tok)-2], ip: ip, uid: "uid-a", want: ErrTokenInvalid},
		{name: "tampered", tok: flip(tok), ip: ip, uid: "uid-a", want: ErrTokenInvalid},
		{name: "empty", tok: "", ip: ip, uid: "uid-a", want: ErrTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *clk
			c.t = c.t.Add(tt.advance)
			v := &Tokens{key: tokens.key, now: c.now}
			if err := v.Verify(tt.tok, tt.ip, tt.uid); !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[10] == 'A' {
		b[10] = 'B'
	} else {
		b[10] = 'A'
	}
	return string(b)
}

// FuzzParseToken feeds arbitrary header values to the token parser and
// verifier: they must never panic and never accept a token not issued here.
func FuzzParseToken(f *testing.F) {
	clk := &fixedClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	tokens, err := NewTokens(clk.now)
	if err != nil {
		f.Fatal(err)
	}
	ip := netip.MustParseAddr("10.0.0.1")
	f.Add(tokens.Issue(ip, "uid", time.Hour))
	f.Add("")
	f.Add("AQAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseToken(s)
		if err := tokens.Verify(s, ip, "uid"); err == nil {
			// Only a token this signer issued may verify; re-issuing must
			// reproduce it byte for byte.
			tk, perr := parseToken(s)
			if perr != nil {
				t.Fatalf("Verify accepted %q that parseToken refuses: %v", s, perr)
			}
			if tokens.Issue(ip, "uid", tk.expiry.Sub(clk.t)) != s {
				t.Fatalf("Verify accepted a token %q not issued by this signer", s)
			}
		}
	})
}
