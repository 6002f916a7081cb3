package sasl

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/xdg-go/scram"
)

// fixedNonce returns a nonce generator that always yields n.
func fixedNonce(n string) func() string { return func() string { return n } }

// mustStart calls Start and fails the test on error.
func mustStart(t *testing.T, m Mechanism) []byte {
	t.Helper()
	b, err := m.Start()
	if err != nil {
		t.Fatalf("%s Start: %v", m.Name(), err)
	}
	return b
}

// mustStep calls Step and fails the test on error.
func mustStep(t *testing.T, m Mechanism, challenge string) ([]byte, bool) {
	t.Helper()
	b, done, err := m.Step([]byte(challenge))
	if err != nil {
		t.Fatalf("%s Step(%q): %v", m.Name(), challenge, err)
	}
	return b, done
}

// wantErr checks err is an *Error for mech and step wrapping target.
func wantErr(t *testing.T, err error, mech, step string, target error) {
	t.Helper()
	if err == nil {
		t.Fatalf("want error wrapping %v, got nil", target)
	}
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *sasl.Error", err, err)
	}
	if se.Mechanism != mech || se.Step != step {
		t.Errorf("error %q: mechanism/step = %q/%q, want %q/%q", err, se.Mechanism, se.Step, mech, step)
	}
	if target != nil && !errors.Is(err, target) {
		t.Errorf("error %q does not wrap %v", err, target)
	}
}

// scramServer is a fake server loop for Run backed by xdg-go/scram's
// server side. Server errors with an RFC 5802 e= value are delivered
// in-band as the challenge, as a real server would.
type scramServer struct {
	conv *scram.ServerConversation
	msgs []string // every message the client sent
}

func newScramServer(t *testing.T, hash scram.HashGeneratorFcn, user, password, salt string, iters int) *scramServer {
	t.Helper()
	c, err := hash.NewClient(user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	creds, err := c.GetStoredCredentialsWithError(scram.KeyFactors{Salt: salt, Iters: iters})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := hash.NewServer(func(u string) (scram.StoredCredentials, error) {
		if u != user {
			return scram.StoredCredentials{}, errors.New("no such user")
		}
		return creds, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return &scramServer{conv: srv.NewConversation()}
}

func (s *scramServer) roundTrip(ctx context.Context, msg []byte) ([]byte, error) {
	s.msgs = append(s.msgs, string(msg))
	if s.conv.Done() {
		return nil, errors.New("fake server: exchange already over")
	}
	resp, err := s.conv.Step(string(msg))
	if err != nil {
		if resp != "" {
			return []byte(resp), nil // in-band server-error
		}
		return nil, err
	}
	return []byte(resp), nil
}

func b64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
