package sasl

import (
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"
)

// Plain returns a PLAIN (RFC 4616) mechanism. Its initial response is
// authzid NUL user NUL password; authzid may be empty. The credentials are
// checked by Start: user and password must be non-empty valid UTF-8 without
// NUL bytes. The server's success carries no data, so Step accepts only an
// empty challenge and then reports done.
//
// PLAIN sends the password in the clear: use it only over TLS.
func Plain(authzid, user, password string) Mechanism {
	return &plainMechanism{authzid: authzid, user: user, password: password}
}

type plainMechanism struct {
	authzid, user, password string
	st                      state
}

func (m *plainMechanism) Name() string { return MechPlain }

func (m *plainMechanism) fail(step string, err error) error {
	m.st = stateFailed
	m.password = ""
	return &Error{Mechanism: MechPlain, Step: step, Err: err}
}

func (m *plainMechanism) validate() error {
	check := func(what, v string, required bool) error {
		switch {
		case v == "" && required:
			return fmt.Errorf("%w: %s is empty", ErrInvalidCredentials, what)
		case strings.IndexByte(v, 0) >= 0:
			return fmt.Errorf("%w: %s contains a NUL byte", ErrInvalidCredentials, what)
		case !utf8.ValidString(v):
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidCredentials, what)
		}
		return nil
	}
	if err := check("authzid", m.authzid, false); err != nil {
		return err
	}
	if err := check("username", m.user, true); err != nil {
		return err
	}
	return check("password", m.password, true)
}

func (m *plainMechanism) Start() ([]byte, error) {
	if err := m.st.checkStart(); err != nil {
		return nil, &Error{Mechanism: MechPlain, Step: "start", Err: err}
	}
	if err := m.validate(); err != nil {
		return nil, m.fail("start", err)
	}
	msg := make([]byte, 0, len(m.authzid)+len(m.user)+len(m.password)+2)
	msg = append(msg, m.authzid...)
	msg = append(msg, 0)
	msg = append(msg, m.user...)
	msg = append(msg, 0)
	msg = append(msg, m.password...)
	m.password = "" // no longer needed
	m.st = stateStarted
	return msg, nil
}

func (m *plainMechanism) Step(challenge []byte) ([]byte, bool, error) {
	if err := m.st.checkStep(); err != nil {
		return nil, true, &Error{Mechanism: MechPlain, Step: "step", Err: err}
	}
	if len(challenge) != 0 {
		return nil, true, m.fail("server-response",
			fmt.Errorf("%w: PLAIN expects no server data (got %d bytes)", ErrUnexpectedChallenge, len(challenge)))
	}
	m.st = stateDone
	return nil, true, nil
}

func (m *plainMechanism) String() string {
	return fmt.Sprintf("sasl.Mechanism{Name:PLAIN, AuthzID:%q, Username:%q, Password:%s, State:%s}",
		m.authzid, m.user, redacted, m.st)
}

func (m *plainMechanism) GoString() string { return m.String() }

func (m *plainMechanism) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, m.String(), m.GoString())
}

func (m *plainMechanism) LogValue() slog.Value { return slog.StringValue(m.String()) }
