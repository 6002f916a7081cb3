// Package sasl implements client-side SASL authentication mechanisms for
// tendril's connections.
//
// Every mechanism sits behind the same [Mechanism] interface: [Mechanism.Start]
// produces the client's first message and [Mechanism.Step] consumes each server
// challenge and produces the next response. A backend (Redis, a Kafka-like
// protocol, PostgreSQL, ...) picks a mechanism, usually with [New], and frames
// the messages on its own wire; [Run] drives the Start/Step loop so that the
// backend only supplies a round-trip function.
//
// Supported mechanisms:
//
//   - PLAIN (RFC 4616), see [Plain].
//   - SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), see [ScramSHA256]
//     and [ScramSHA512]. The SCRAM exchange is delegated to
//     github.com/xdg-go/scram; this package adds SASLprep of the credentials,
//     server-nonce and server-signature checks with typed errors, and the
//     single-use state machine.
//   - OAUTHBEARER (RFC 7628), see [OAuthBearer].
//
// Security: passwords and bearer tokens never appear in the errors returned
// by this package, nor in the fmt (String, GoString, %v, %+v, %#v, ...) or
// slog output of any type defined here. A Mechanism value is good for exactly
// one authentication exchange: calling Start twice, or Step after the
// exchange finished (successfully or not), returns an error. Mechanisms are
// not safe for concurrent use; one exchange runs on one goroutine.
package sasl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// Mechanism is one SASL mechanism in progress for one authentication
// exchange.
//
// The exchange is:
//
//	initial, err := m.Start()          // send initial (nil: no initial response)
//	for {
//	    challenge := <server's next challenge or outcome data>
//	    resp, done, err := m.Step(challenge)
//	    ...
//	}
//
// Step contract:
//   - err == nil, done == false: send resp and wait for the next challenge.
//   - err == nil, done == true: the client side finished successfully; if resp
//     is non-nil it must still be delivered to the server (whose final outcome
//     decides), otherwise nothing more is sent.
//   - err != nil: authentication failed. If resp is non-nil the protocol
//     requires it to be sent to abort the exchange (for example the %x01
//     dummy response of OAUTHBEARER after an error challenge); the server's
//     reply to it is a failure and carries no further information.
//
// Backends whose protocol signals success out of band (for example a
// PostgreSQL AuthenticationOk or a Kafka SaslAuthenticate response with an
// empty token) pass the additional data, or nil if there is none, to Step.
type Mechanism interface {
	// Name is the IANA-registered mechanism name, e.g. "PLAIN" or
	// "SCRAM-SHA-256".
	Name() string
	// Start returns the client-first message (the SASL initial response).
	// A nil result means the mechanism has no initial response.
	Start() (initial []byte, err error)
	// Step processes one server challenge; see the interface documentation
	// for the meaning of the results.
	Step(challenge []byte) (response []byte, done bool, err error)
}

// Mechanism names understood by [New].
const (
	MechPlain       = "PLAIN"
	MechScramSHA256 = "SCRAM-SHA-256"
	MechScramSHA512 = "SCRAM-SHA-512"
	MechOAuthBearer = "OAUTHBEARER"
)

// Sentinel errors; test for them with [errors.Is]. Errors returned by
// mechanisms are *[Error] values that wrap one of these, a *[ServerError], or
// an error from the round-trip function given to [Run].
var (
	// ErrUnknownMechanism is returned by New for a name it does not support.
	ErrUnknownMechanism = errors.New("unknown mechanism")
	// ErrInvalidCredentials reports credentials that cannot be encoded for
	// the mechanism (empty user name, NUL bytes, failed SASLprep, a token that
	// is not an RFC 6750 b64token, ...). The offending value is never quoted.
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrAlreadyStarted is returned by a second call to Start.
	ErrAlreadyStarted = errors.New("mechanism already started (mechanisms are single-use)")
	// ErrNotStarted is returned by Step before Start.
	ErrNotStarted = errors.New("Step called before Start")
	// ErrFinished is returned by Step after the exchange completed or failed.
	ErrFinished = errors.New("mechanism already finished (mechanisms are single-use)")
	// ErrServerSignature reports a SCRAM server-final message whose
	// verifier (v=) does not prove knowledge of the password.
	ErrServerSignature = errors.New("server signature mismatch")
	// ErrNonceMismatch reports a SCRAM server nonce that does not start with,
	// and extend, the client nonce.
	ErrNonceMismatch = errors.New("server nonce does not extend client nonce")
	// ErrIterationCount reports a SCRAM PBKDF2 iteration count below the
	// RFC 7677 minimum of 4096 or absurdly high.
	ErrIterationCount = errors.New("unacceptable iteration count")
	// ErrMalformedChallenge reports a server message that cannot be parsed.
	ErrMalformedChallenge = errors.New("malformed server message")
	// ErrUnexpectedChallenge reports server data where the mechanism expects
	// none.
	ErrUnexpectedChallenge = errors.New("unexpected server challenge")
)

// Error is the error type returned by mechanisms and by [Run]. It names the
// mechanism and the step of the exchange that failed and wraps the cause.
type Error struct {
	Mechanism string // e.g. "SCRAM-SHA-256"
	Step      string // e.g. "start", "server-first", "server-final", "round trip 2"
	Err       error  // the cause: a sentinel above, a *ServerError, or a transport error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("sasl: ")
	b.WriteString(e.Mechanism)
	if e.Step != "" {
		b.WriteString(": ")
		b.WriteString(e.Step)
	}
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("unknown error")
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ServerError is an authentication failure that the server reported inside
// the mechanism's own messages: a SCRAM server-error (e=...) or an
// OAUTHBEARER error challenge (RFC 7628 section 3.2.2).
type ServerError struct {
	// Code is the SCRAM server-error value (e.g. "invalid-proof") or the
	// OAUTHBEARER "status" (e.g. "invalid_token").
	Code string
	// Scope and OpenIDConfiguration are the optional OAUTHBEARER error
	// fields "scope" and "openid-configuration"; empty for SCRAM.
	Scope               string
	OpenIDConfiguration string
}

func (e *ServerError) Error() string {
	s := "server error: " + printable(e.Code)
	if e.Scope != "" {
		s += " (scope " + printable(e.Scope) + ")"
	}
	return s
}

// Credentials carries what [New] needs to build any supported mechanism.
// Fields a mechanism does not use are ignored. Its String, GoString, Format,
// LogValue and MarshalJSON methods redact Password, Token and extension
// values.
type Credentials struct {
	// AuthzID is the optional authorization identity (act as this user).
	AuthzID string
	// Username is the authentication identity (PLAIN, SCRAM).
	Username string
	// Password is the secret for PLAIN and SCRAM.
	Password string
	// Token is the OAuth 2.0 bearer token for OAUTHBEARER.
	Token string
	// Host and Port are the optional OAUTHBEARER "host" and "port" values
	// (Port 0 omits it).
	Host string
	Port int
	// Extensions are additional OAUTHBEARER key/value pairs (for example
	// Kafka SASL extensions), sent in sorted key order.
	Extensions map[string]string
}

type factory func(c Credentials) (Mechanism, error)

var registry = map[string]factory{
	MechPlain: func(c Credentials) (Mechanism, error) {
		m := Plain(c.AuthzID, c.Username, c.Password).(*plainMechanism)
		if err := m.validate(); err != nil {
			return nil, &Error{Mechanism: MechPlain, Step: "new", Err: err}
		}
		return m, nil
	},
	MechScramSHA256: func(c Credentials) (Mechanism, error) {
		return newScram(MechScramSHA256, c.AuthzID, c.Username, c.Password, nil)
	},
	MechScramSHA512: func(c Credentials) (Mechanism, error) {
		return newScram(MechScramSHA512, c.AuthzID, c.Username, c.Password, nil)
	},
	MechOAuthBearer: func(c Credentials) (Mechanism, error) {
		opts := []OAuthBearerOption{WithAuthzID(c.AuthzID), WithHost(c.Host), WithPort(c.Port)}
		for _, k := range sortedKeys(c.Extensions) {
			opts = append(opts, WithExtension(k, c.Extensions[k]))
		}
		m := OAuthBearer(c.Token, opts...).(*oauthBearerMechanism)
		if _, err := m.initial(); err != nil {
			return nil, &Error{Mechanism: MechOAuthBearer, Step: "new", Err: err}
		}
		return m, nil
	},
}

// Mechanisms returns the names [New] supports, sorted.
func Mechanisms() []string { return sortedKeys(registry) }

// New builds a fresh mechanism by its SASL name (matched case-insensitively)
// from c, validating the credentials it needs. An unknown name yields an
// error that wraps [ErrUnknownMechanism], names the mechanism and lists the
// supported ones.
func New(name string, c Credentials) (Mechanism, error) {
	f, ok := registry[strings.ToUpper(name)]
	if !ok {
		return nil, fmt.Errorf("sasl: %w %s (supported: %s)",
			ErrUnknownMechanism, printable(name), strings.Join(Mechanisms(), ", "))
	}
	return f(c)
}

// RoundTripFunc sends one client message to the server, framed as the
// backend's protocol requires, and returns the server's next challenge (or
// the additional data of a successful outcome, nil if none). It returns an
// error when the server reports failure or the transport breaks. On the
// first call msg is the initial response; nil means "no initial response".
type RoundTripFunc func(ctx context.Context, msg []byte) (challenge []byte, err error)

// maxRounds bounds the exchange; every supported mechanism needs at most 3.
const maxRounds = 16

// Run drives one authentication exchange: it calls m.Start, then alternates
// roundTrip and m.Step until the mechanism is done or fails. It returns nil
// once the client side finished and the server accepted every message.
//
// When Step fails and returns an abort message (OAUTHBEARER's %x01), Run
// sends it before returning Step's error; the server's reply to it is
// discarded. ctx is checked before every round trip and passed to roundTrip.
func Run(ctx context.Context, m Mechanism, roundTrip RoundTripFunc) error {
	if m == nil || roundTrip == nil {
		return errors.New("sasl: Run: nil mechanism or round-trip function")
	}
	name := m.Name()
	if err := ctx.Err(); err != nil {
		return &Error{Mechanism: name, Step: "start", Err: err}
	}
	msg, err := m.Start()
	if err != nil {
		return err
	}
	for round := 1; ; round++ {
		if round > maxRounds {
			return &Error{Mechanism: name, Step: fmt.Sprintf("round trip %d", round),
				Err: errors.New("too many round trips")}
		}
		step := fmt.Sprintf("round trip %d", round)
		if err := ctx.Err(); err != nil {
			return &Error{Mechanism: name, Step: step, Err: err}
		}
		challenge, err := roundTrip(ctx, msg)
		if err != nil {
			return &Error{Mechanism: name, Step: step, Err: err}
		}
		resp, done, err := m.Step(challenge)
		if err != nil {
			if resp != nil && ctx.Err() == nil {
				// The server answers the abort message with a failure
				// that adds nothing to err.
				_, _ = roundTrip(ctx, resp)
			}
			return err
		}
		if done {
			if resp == nil {
				return nil
			}
			step = fmt.Sprintf("round trip %d", round+1)
			if err := ctx.Err(); err != nil {
				return &Error{Mechanism: name, Step: step, Err: err}
			}
			if _, err := roundTrip(ctx, resp); err != nil {
				return &Error{Mechanism: name, Step: step, Err: err}
			}
			return nil
		}
		msg = resp
	}
}

// state is the single-use life cycle shared by all mechanisms.
type state int

const (
	stateNew state = iota
	stateStarted
	stateDone
	stateFailed
)

func (s state) String() string {
	switch s {
	case stateNew:
		return "new"
	case stateStarted:
		return "started"
	case stateDone:
		return "done"
	default:
		return "failed"
	}
}

// checkStart and checkStep implement the single-use rules.
func (s state) checkStart() error {
	if s != stateNew {
		return ErrAlreadyStarted
	}
	return nil
}

func (s state) checkStep() error {
	switch s {
	case stateNew:
		return ErrNotStarted
	case stateStarted:
		return nil
	default:
		return ErrFinished
	}
}

// printable returns s unchanged when it is short printable ASCII without
// quotes, and a quoted, truncated form otherwise, so that server- or
// caller-supplied text cannot inject control characters into messages.
func printable(s string) string {
	const max = 128
	ok := len(s) > 0 && len(s) <= max
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c > ' ' && c < 0x7f && c != '"' && c != '\\'
	}
	if ok {
		return s
	}
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q...", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
