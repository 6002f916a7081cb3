package sasl

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// RFC 4616 section 4 examples.
func TestPlainRFC4616Vectors(t *testing.T) {
	tests := []struct {
		authzid, user, pass string
		want                string
		wantB64             string
	}{
		{"", "tim", "tanstaaftanstaaf", "\x00tim\x00tanstaaftanstaaf", "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"},
		{"Ursel", "Kurt", "xipj3plmq", "Ursel\x00Kurt\x00xipj3plmq", "VXJzZWwAS3VydAB4aXBqM3BsbXE="},
	}
	for _, tc := range tests {
		m := Plain(tc.authzid, tc.user, tc.pass)
		if m.Name() != "PLAIN" {
			t.Fatalf("Name = %q", m.Name())
		}
		got := mustStart(t, m)
		if string(got) != tc.want {
			t.Errorf("initial response = %q, want %q", got, tc.want)
		}
		if !bytes.Equal(got, b64(tc.wantB64)) {
			t.Errorf("initial response %q differs from the RFC's base64 form", got)
		}
		resp, done := mustStep(t, m, "")
		if resp != nil || !done {
			t.Errorf("Step(success) = %q, %v; want nil, true", resp, done)
		}
		_, _, err := m.Step(nil)
		wantErr(t, err, MechPlain, "step", ErrFinished)
	}
}

func TestPlainLifecycle(t *testing.T) {
	m := Plain("", "tim", "tanstaaftanstaaf")
	_, _, err := m.Step(nil)
	wantErr(t, err, MechPlain, "step", ErrNotStarted)
	mustStart(t, m)
	_, err = m.Start()
	wantErr(t, err, MechPlain, "start", ErrAlreadyStarted)

	// Server data where PLAIN expects none fails the exchange.
	m = Plain("", "tim", "tanstaaftanstaaf")
	mustStart(t, m)
	_, done, err := m.Step([]byte("surprise"))
	if !done {
		t.Error("done = false after failure")
	}
	wantErr(t, err, MechPlain, "server-response", ErrUnexpectedChallenge)
	_, _, err = m.Step(nil)
	wantErr(t, err, MechPlain, "step", ErrFinished)
}

func TestPlainInvalidCredentials(t *testing.T) {
	for name, c := range map[string][3]string{
		"empty user":     {"", "", "pw"},
		"empty password": {"", "tim", ""},
		"NUL in user":    {"", "t\x00im", "pw"},
		"NUL in pass":    {"", "tim", "p\x00w"},
		"NUL in authzid": {"a\x00", "tim", "pw"},
		"bad UTF-8":      {"", "tim", "p\xffw"},
	} {
		t.Run(name, func(t *testing.T) {
			m := Plain(c[0], c[1], c[2])
			_, err := m.Start()
			wantErr(t, err, MechPlain, "start", ErrInvalidCredentials)
			_, err = New("PLAIN", Credentials{AuthzID: c[0], Username: c[1], Password: c[2]})
			wantErr(t, err, MechPlain, "new", ErrInvalidCredentials)
		})
	}
}

func TestPlainRun(t *testing.T) {
	var sent [][]byte
	server := func(ctx context.Context, msg []byte) ([]byte, error) {
		sent = append(sent, msg)
		if string(msg) != "\x00tim\x00tanstaaftanstaaf" {
			return nil, errors.New("invalid credentials")
		}
		return nil, nil // success, no additional data
	}
	if err := Run(context.Background(), Plain("", "tim", "tanstaaftanstaaf"), server); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(sent) != 1 {
		t.Fatalf("sent %d messages, want 1", len(sent))
	}
	err := Run(context.Background(), Plain("", "tim", "wrong"), server)
	wantErr(t, err, MechPlain, "round trip 1", nil)
	if err.Error() != "sasl: PLAIN: round trip 1: invalid credentials" {
		t.Errorf("error = %q", err)
	}
}
