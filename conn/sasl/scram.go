package sasl

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/xdg-go/scram"
	"github.com/xdg-go/stringprep"
)

// ScramSHA256 returns a SCRAM-SHA-256 (RFC 7677) client mechanism for user
// and password, both prepared with SASLprep (RFC 4013). It fails when
// SASLprep rejects a credential or user is empty.
//
// The exchange is: Start returns client-first; Step(server-first) returns
// client-final; Step(server-final) verifies the server signature and
// reports done. The server nonce must extend the client nonce, a server
// error (e=...) yields a *[ServerError], and a wrong server signature yields
// [ErrServerSignature]. An iteration count outside 4096..10,000,000 yields
// [ErrIterationCount].
func ScramSHA256(user, password string) (Mechanism, error) {
	return newScram(MechScramSHA256, "", user, password, nil)
}

// ScramSHA512 is [ScramSHA256] with SHA-512 (SCRAM-SHA-512).
func ScramSHA512(user, password string) (Mechanism, error) {
	return newScram(MechScramSHA512, "", user, password, nil)
}

// PBKDF2 iteration bounds for SCRAM. The minimum is RFC 7677's
// recommendation (and the library default); the maximum stops a hostile
// server from making the client burn CPU for minutes.
const (
	minIterations = 4096
	maxIterations = 10_000_000
)

type scramMechanism struct {
	name  string
	user  string // as given, for String
	authz string // as given, for String

	client   *scram.Client // holds the prepared password; dropped when finished
	conv     *scram.ClientConversation
	nonceGen func() string
	nonce    string // client nonce sent in client-first
	st       state
	phase    int // 0: expect server-first, 1: expect server-final
}

// newScram builds a SCRAM mechanism. nonceGen overrides the client nonce
// generator (tests inject RFC vectors through it); nil uses 24 random bytes.
func newScram(name, authzid, user, password string, nonceGen func() string) (*scramMechanism, error) {
	var hash scram.HashGeneratorFcn
	switch name {
	case MechScramSHA256:
		hash = scram.SHA256
	case MechScramSHA512:
		hash = scram.SHA512
	default:
		return nil, fmt.Errorf("sasl: %w %s", ErrUnknownMechanism, printable(name))
	}
	fail := func(err error) error { return &Error{Mechanism: name, Step: "new", Err: err} }
	if user == "" {
		return nil, fail(fmt.Errorf("%w: username is empty", ErrInvalidCredentials))
	}
	puser, err := saslprep("username", user)
	if err != nil {
		return nil, fail(err)
	}
	ppass, err := saslprep("password", password)
	if err != nil {
		return nil, fail(err)
	}
	pauthz, err := saslprep("authzid", authzid)
	if err != nil {
		return nil, fail(err)
	}
	// The credentials are prepared above (with errors that never quote the
	// password), so the library must not prepare them again.
	client, err := hash.NewClientUnprepped(puser, ppass, pauthz)
	if err != nil {
		return nil, fail(fmt.Errorf("%w: %s", ErrInvalidCredentials, "cannot create SCRAM client"))
	}
	if nonceGen == nil {
		nonceGen = randomNonce
	}
	m := &scramMechanism{name: name, user: user, authz: authzid, client: client, nonceGen: nonceGen}
	client.WithNonceGenerator(func() string { return m.nonce })
	return m, nil
}

// saslprep applies SASLprep and reports failures without quoting the value
// (stringprep's own error text includes the offending rune).
func saslprep(what, s string) (string, error) {
	out, err := stringprep.SASLprep.Prepare(s)
	if err != nil {
		msg := "SASLprep failed"
		var perr stringprep.Error
		if errors.As(err, &perr) {
			msg = "SASLprep: " + perr.Msg
		}
		return "", fmt.Errorf("%w: %s: %s", ErrInvalidCredentials, what, msg)
	}
	return out, nil
}

func randomNonce() string {
	var raw [24]byte
	_, _ = rand.Read(raw[:]) // never fails since Go 1.24
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

func (m *scramMechanism) Name() string { return m.name }

func (m *scramMechanism) fail(step string, err error) error {
	m.st = stateFailed
	m.client, m.conv = nil, nil
	return &Error{Mechanism: m.name, Step: step, Err: err}
}

func (m *scramMechanism) Start() ([]byte, error) {
	if err := m.st.checkStart(); err != nil {
		return nil, &Error{Mechanism: m.name, Step: "client-first", Err: err}
	}
	m.nonce = m.nonceGen()
	if m.nonce == "" || strings.ContainsFunc(m.nonce, func(r rune) bool { return r <= ' ' || r > '~' || r == ',' }) {
		return nil, m.fail("client-first", errors.New("invalid client nonce"))
	}
	m.conv = m.client.NewConversation()
	first, err := m.conv.Step("")
	if err != nil {
		return nil, m.fail("client-first", err)
	}
	m.st = stateStarted
	return []byte(first), nil
}

func (m *scramMechanism) Step(challenge []byte) ([]byte, bool, error) {
	if err := m.st.checkStep(); err != nil {
		return nil, true, &Error{Mechanism: m.name, Step: "step", Err: err}
	}
	if m.phase == 0 {
		return m.serverFirst(string(challenge))
	}
	return m.serverFinal(string(challenge))
}

// serverFirst checks server-first = [reserved-mext ","] nonce "," salt ","
// iteration-count ["," extensions] and answers with client-final.
func (m *scramMechanism) serverFirst(s string) ([]byte, bool, error) {
	const step = "server-first"
	if code, ok := strings.CutPrefix(s, "e="); ok {
		// Not allowed by RFC 5802 here, but some servers fail early.
		return nil, true, m.fail(step, &ServerError{Code: firstField(code)})
	}
	nonce, ok := strings.CutPrefix(firstField(s), "r=")
	if !ok {
		return nil, true, m.fail(step, fmt.Errorf("%w: missing nonce (r=)", ErrMalformedChallenge))
	}
	if !strings.HasPrefix(nonce, m.nonce) || len(nonce) == len(m.nonce) {
		return nil, true, m.fail(step, ErrNonceMismatch)
	}
	if err := checkServerFirst(s); err != nil {
		return nil, true, m.fail(step, err)
	}
	final, err := m.conv.Step(s)
	if err != nil {
		return nil, true, m.fail(step, err)
	}
	m.phase = 1
	return []byte(final), false, nil
}

// checkServerFirst validates the salt and iteration count fields, which
// the library would also reject, so that callers get typed errors.
func checkServerFirst(s string) error {
	fields := strings.Split(s, ",")
	if len(fields) < 3 {
		return fmt.Errorf("%w: want r=,s=,i= fields", ErrMalformedChallenge)
	}
	salt, ok := strings.CutPrefix(fields[1], "s=")
	if !ok || salt == "" {
		return fmt.Errorf("%w: missing salt (s=)", ErrMalformedChallenge)
	}
	if _, err := base64.StdEncoding.DecodeString(salt); err != nil {
		return fmt.Errorf("%w: salt is not base64", ErrMalformedChallenge)
	}
	iters, ok := strings.CutPrefix(fields[2], "i=")
	if !ok {
		return fmt.Errorf("%w: missing iteration count (i=)", ErrMalformedChallenge)
	}
	n, err := strconv.Atoi(iters)
	if err != nil {
		return fmt.Errorf("%w: iteration count is not a number", ErrMalformedChallenge)
	}
	if n < minIterations || n > maxIterations {
		return fmt.Errorf("%w: %d (allowed %d..%d)", ErrIterationCount, n, minIterations, maxIterations)
	}
	return nil
}

// serverFinal checks server-final = (server-error / verifier) ["," extensions].
func (m *scramMechanism) serverFinal(s string) ([]byte, bool, error) {
	const step = "server-final"
	field := firstField(s)
	if code, ok := strings.CutPrefix(field, "e="); ok {
		return nil, true, m.fail(step, &ServerError{Code: code})
	}
	v, ok := strings.CutPrefix(field, "v=")
	if !ok {
		return nil, true, m.fail(step, fmt.Errorf("%w: expected verifier (v=) or server-error (e=)", ErrMalformedChallenge))
	}
	if _, err := base64.StdEncoding.DecodeString(v); err != nil || v == "" {
		return nil, true, m.fail(step, fmt.Errorf("%w: verifier is not base64", ErrMalformedChallenge))
	}
	// The message is well formed, so the library can only reject the
	// signature itself.
	if _, err := m.conv.Step(s); err != nil || !m.conv.Valid() {
		return nil, true, m.fail(step, ErrServerSignature)
	}
	m.st = stateDone
	m.client, m.conv = nil, nil
	return nil, true, nil
}

func firstField(s string) string {
	f, _, _ := strings.Cut(s, ",")
	return f
}

func (m *scramMechanism) String() string {
	return fmt.Sprintf("sasl.Mechanism{Name:%s, AuthzID:%q, Username:%q, Password:%s, State:%s}",
		m.name, m.authz, m.user, redacted, m.st)
}

func (m *scramMechanism) GoString() string { return m.String() }

func (m *scramMechanism) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, m.String(), m.GoString())
}

func (m *scramMechanism) LogValue() slog.Value { return slog.StringValue(m.String()) }
