package sasl

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"unicode/utf8"
)

// OAuthBearerOption configures [OAuthBearer].
type OAuthBearerOption func(*oauthBearerMechanism)

// WithAuthzID sets the OAUTHBEARER authorization identity, sent in the GS2
// header as a=<authzid>. Empty means none.
func WithAuthzID(authzid string) OAuthBearerOption {
	return func(m *oauthBearerMechanism) { m.authzid = authzid }
}

// WithHost sets the OAUTHBEARER "host" key (the server's host name as the
// client knows it). Empty means omitted.
func WithHost(host string) OAuthBearerOption {
	return func(m *oauthBearerMechanism) { m.host = host }
}

// WithPort sets the OAUTHBEARER "port" key. 0 means omitted.
func WithPort(port int) OAuthBearerOption {
	return func(m *oauthBearerMechanism) { m.port = port }
}

// WithExtension adds a key=value pair to the client response (RFC 7628
// section 3.1 allows additional keys; Kafka uses them for SASL extensions).
// key must be letters only and not one of auth, host, port; pairs are sent
// in the order the options are given, before auth.
func WithExtension(key, value string) OAuthBearerOption {
	return func(m *oauthBearerMechanism) { m.ext = append(m.ext, [2]string{key, value}) }
}

// OAuthBearer returns an OAUTHBEARER (RFC 7628) mechanism presenting token
// as "auth=Bearer <token>". Start builds the initial client response
//
//	n,[a=<authzid>],\x01[host=<host>\x01][port=<port>\x01]...auth=Bearer <token>\x01\x01
//
// and fails if the token is not an RFC 6750 b64token or another value
// cannot be encoded (the token is never quoted in errors).
//
// A successful server outcome carries no data: Step(nil) reports done. A
// non-empty challenge is the server's JSON error (RFC 7628 section 3.2.2):
// Step then returns the %x01 dummy response that must still be sent to end
// the exchange, together with an error wrapping a *[ServerError] that holds
// the server's status, scope and openid-configuration.
func OAuthBearer(token string, opts ...OAuthBearerOption) Mechanism {
	m := &oauthBearerMechanism{token: token}
	for _, o := range opts {
		if o != nil {
			o(m)
		}
	}
	return m
}

type oauthBearerMechanism struct {
	token   string
	authzid string
	host    string
	port    int
	ext     [][2]string
	st      state
}

func (m *oauthBearerMechanism) Name() string { return MechOAuthBearer }

func (m *oauthBearerMechanism) fail(step string, err error) error {
	m.st = stateFailed
	m.token = ""
	return &Error{Mechanism: MechOAuthBearer, Step: step, Err: err}
}

// initial encodes the client response, validating every field.
func (m *oauthBearerMechanism) initial() ([]byte, error) {
	if !isB64Token(m.token) {
		return nil, fmt.Errorf("%w: token is empty or not an RFC 6750 b64token", ErrInvalidCredentials)
	}
	var b strings.Builder
	b.WriteString("n,")
	if m.authzid != "" {
		if !utf8.ValidString(m.authzid) || strings.ContainsAny(m.authzid, "\x00\x01") {
			return nil, fmt.Errorf("%w: authzid is not valid UTF-8 or contains control bytes", ErrInvalidCredentials)
		}
		b.WriteString("a=")
		b.WriteString(encodeSASLName(m.authzid))
	}
	b.WriteString(",\x01")
	if m.host != "" {
		if !isKVValue(m.host) {
			return nil, fmt.Errorf("%w: host contains invalid characters", ErrInvalidCredentials)
		}
		b.WriteString("host=" + m.host + "\x01")
	}
	if m.port != 0 {
		if m.port < 1 || m.port > 65535 {
			return nil, fmt.Errorf("%w: port %d out of range", ErrInvalidCredentials, m.port)
		}
		b.WriteString("port=" + strconv.Itoa(m.port) + "\x01")
	}
	for _, kv := range m.ext {
		k, v := kv[0], kv[1]
		if !isKVKey(k) || k == "auth" || k == "host" || k == "port" {
			return nil, fmt.Errorf("%w: invalid or reserved extension key %s", ErrInvalidCredentials, printable(k))
		}
		if !isKVValue(v) {
			return nil, fmt.Errorf("%w: extension %s has an invalid value", ErrInvalidCredentials, k)
		}
		b.WriteString(k + "=" + v + "\x01")
	}
	b.WriteString("auth=Bearer " + m.token + "\x01\x01")
	return []byte(b.String()), nil
}

func (m *oauthBearerMechanism) Start() ([]byte, error) {
	if err := m.st.checkStart(); err != nil {
		return nil, &Error{Mechanism: MechOAuthBearer, Step: "start", Err: err}
	}
	msg, err := m.initial()
	if err != nil {
		return nil, m.fail("start", err)
	}
	m.token = "" // no longer needed
	m.st = stateStarted
	return msg, nil
}

// oauthError is the RFC 7628 section 3.2.2 error challenge.
type oauthError struct {
	Status              *string `json:"status"`
	Scope               string  `json:"scope"`
	OpenIDConfiguration string  `json:"openid-configuration"`
}

func (m *oauthBearerMechanism) Step(challenge []byte) ([]byte, bool, error) {
	if err := m.st.checkStep(); err != nil {
		return nil, true, &Error{Mechanism: MechOAuthBearer, Step: "step", Err: err}
	}
	if len(challenge) == 0 {
		m.st = stateDone
		return nil, true, nil
	}
	// Any challenge is an error report; the client must answer with a
	// single %x01 and the server then fails the exchange.
	abort := []byte{0x01}
	var e oauthError
	if err := json.Unmarshal(challenge, &e); err != nil || e.Status == nil || *e.Status == "" {
		return abort, true, m.fail("server-challenge",
			fmt.Errorf("%w: error challenge is not JSON with a status", ErrMalformedChallenge))
	}
	return abort, true, m.fail("server-challenge", &ServerError{
		Code:                *e.Status,
		Scope:               e.Scope,
		OpenIDConfiguration: e.OpenIDConfiguration,
	})
}

// isB64Token reports whether s matches RFC 6750's
// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

// isKVKey: key = 1*(ALPHA).
func isKVKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// isKVValue: value = *(VCHAR / SP / HTAB / CR / LF).
func isKVValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 0x20 && c <= 0x7e) && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// encodeSASLName escapes "," and "=" as RFC 5801/5802 saslname requires.
func encodeSASLName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

func (m *oauthBearerMechanism) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sasl.Mechanism{Name:OAUTHBEARER, AuthzID:%q, Token:%s", m.authzid, redacted)
	if m.host != "" {
		fmt.Fprintf(&b, ", Host:%q", m.host)
	}
	if m.port != 0 {
		fmt.Fprintf(&b, ", Port:%d", m.port)
	}
	for _, kv := range m.ext {
		fmt.Fprintf(&b, ", %s:%s", printable(kv[0]), redacted)
	}
	fmt.Fprintf(&b, ", State:%s}", m.st)
	return b.String()
}

func (m *oauthBearerMechanism) GoString() string { return m.String() }

func (m *oauthBearerMechanism) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, m.String(), m.GoString())
}

func (m *oauthBearerMechanism) LogValue() slog.Value { return slog.StringValue(m.String()) }
