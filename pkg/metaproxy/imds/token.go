package imds

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// IMDSv2 token headers.
const (
	TokenHeader    = "X-Aws-Ec2-Metadata-Token"
	TokenTTLHeader = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	MaxTokenTTL    = 21600
)

// Token errors; all of them answer 401 except ErrBadTTL (400).
var (
	ErrBadTTL        = errors.New("token TTL must be an integer number of seconds from 1 to 21600")
	ErrTokenInvalid  = errors.New("invalid metadata token")
	ErrTokenExpired  = errors.New("metadata token expired")
	ErrTokenOtherPod = errors.New("metadata token belongs to another pod")
)

// ParseTTL reads X-aws-ec2-metadata-token-ttl-seconds: digits only, 1–21600.
func ParseTTL(s string) (time.Duration, error) {
	if s == "" || len(s) > 5 {
		return 0, ErrBadTTL
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, ErrBadTTL
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxTokenTTL {
		return 0, ErrBadTTL
	}
	return time.Duration(n) * time.Second, nil
}

// A token is base64url(payload || mac), payload = version | expiry (unix
// seconds) | pod IP (16 bytes) | hash of pod UID (16 bytes), mac = the first
// 16 bytes of HMAC-SHA256 over payload with a key made at startup. Tokens are
// stateless, bound to both IP and UID (a pod that inherits an IP does not
// inherit its predecessor's tokens), and die with the process: SDKs fetch a
// new one on 401.
const (
	tokenVersion = 1
	payloadLen   = 1 + 8 + 16 + 16
	macLen       = 16
	tokenLen     = payloadLen + macLen
	// maxTokenChars refuses oversized headers before decoding them.
	maxTokenChars = 128
)

// Tokens issues and verifies IMDSv2 tokens.
type Tokens struct {
	key [32]byte
	now func() time.Time
}

// NewTokens makes a token signer with a fresh random key.
func NewTokens(now func() time.Time) (*Tokens, error) {
	t := &Tokens{now: now}
	if t.now == nil {
		t.now = time.Now
	}
	if _, err := rand.Read(t.key[:]); err != nil {
		return nil, fmt.Errorf("generating the token key: %w", err)
	}
	return t, nil
}

func uidHash(uid string) [16]byte {
	sum := sha256.Sum256([]byte(uid))
	var h [16]byte
	copy(h[:], sum[:16])
	return h
}

func (t *Tokens) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, t.key[:])
	m.Write(payload)
	return m.Sum(nil)[:macLen]
}

// Issue returns a token for the pod (ip, uid) valid for ttl.
func (t *Tokens) Issue(ip netip.Addr, uid string, ttl time.Duration) string {
	buf := make([]byte, 0, tokenLen)
	buf = append(buf, tokenVersion)
	buf = binary.BigEndian.AppendUint64(buf, uint64(t.now().Add(ttl).Unix()))
	ip16 := ip.Unmap().As16()
	buf = append(buf, ip16[:]...)
	h := uidHash(uid)
	buf = append(buf, h[:]...)
	buf = append(buf, t.mac(buf)...)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// token is a decoded, not yet verified token.
type token struct {
	payload []byte
	mac     []byte
	expiry  time.Time
	ip      netip.Addr
	uid     [16]byte
}

// parseToken decodes the wire form; it checks shape, not signature.
func parseToken(s string) (token, error) {
	if len(s) == 0 || len(s) > maxTokenChars {
		return token{}, ErrTokenInvalid
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(raw) != tokenLen || raw[0] != tokenVersion {
		return token{}, ErrTokenInvalid
	}
	tk := token{payload: raw[:payloadLen], mac: raw[payloadLen:]}
	secs := binary.BigEndian.Uint64(raw[1:9])
	if secs > 1<<40 {
		return token{}, ErrTokenInvalid
	}
	tk.expiry = time.Unix(int64(secs), 0)
	tk.ip = netip.AddrFrom16([16]byte(raw[9:25])).Unmap()
	copy(tk.uid[:], raw[25:41])
	return tk, nil
}

// Verify checks a token presented by the pod (ip, uid).
func (t *Tokens) Verify(s string, ip netip.Addr, uid string) error {
	tk, err := parseToken(s)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(tk.mac, t.mac(tk.payload)) != 1 {
		return ErrTokenInvalid
	}
	if !t.now().Before(tk.expiry) {
		return ErrTokenExpired
	}
	if tk.ip != ip.Unmap() || tk.uid != uidHash(uid) {
		return ErrTokenOtherPod
	}
	return nil
}
