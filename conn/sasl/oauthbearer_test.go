package sasl

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// RFC 7628 section 4.
const (
	rfc7628Token = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="
	// Section 4.1 initial client response, as sent (base64) in the IMAP
	// example; section 4.3 starts with the same message.
	rfc7628InitialB64 = "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
	rfc7628Initial    = "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
	// Section 4.3 server error challenge (base64 in the IMAP example).
	rfc7628ErrorB64 = "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0="
)

func rfc7628Mech() Mechanism {
	return OAuthBearer(rfc7628Token,
		WithAuthzID("user@example.com"), WithHost("server.example.com"), WithPort(143))
}

func TestOAuthBearerRFC7628Success(t *testing.T) {
	if string(b64(rfc7628InitialB64)) != rfc7628Initial {
		t.Fatalf("test vector inconsistent: %q", b64(rfc7628InitialB64))
	}
	m := rfc7628Mech()
	if m.Name() != "OAUTHBEARER" {
		t.Fatalf("Name = %q", m.Name())
	}
	if got := mustStart(t, m); string(got) != rfc7628Initial {
		t.Fatalf("initial response = %q, want %q", got, rfc7628Initial)
	}
	resp, done := mustStep(t, m, "") // "t1 OK SASL authentication succeeded"
	if resp != nil || !done {
		t.Fatalf("Step(success) = %q, %v; want nil, true", resp, done)
	}
	_, _, err := m.Step(nil)
	wantErr(t, err, MechOAuthBearer, "step", ErrFinished)
}

func TestOAuthBearerRFC7628Failure(t *testing.T) {
	m := rfc7628Mech()
	mustStart(t, m)
	resp, done, err := m.Step(b64(rfc7628ErrorB64))
	if !bytes.Equal(resp, []byte{0x01}) {
		t.Fatalf("response to error challenge = %q, want \\x01 (AQ==)", resp)
	}
	if !done {
		t.Error("done = false after failure")
	}
	wantErr(t, err, MechOAuthBearer, "server-challenge", nil)
	var se *ServerError
	if !errors.As(err, &se) {
		t.Fatalf("error %v does not wrap *ServerError", err)
	}
	want := ServerError{Code: "invalid_token", Scope: "example_scope",
		OpenIDConfiguration: "https://example.com/.well-known/openid-configuration"}
	if *se != want {
		t.Errorf("ServerError = %+v, want %+v", *se, want)
	}
	if got := err.Error(); got != "sasl: OAUTHBEARER: server-challenge: server error: invalid_token (scope example_scope)" {
		t.Errorf("error = %q", got)
	}
	_, _, err = m.Step(nil)
	wantErr(t, err, MechOAuthBearer, "step", ErrFinished)
}

// The whole section 4.3 flow through Run: the client must send the %x01
// dummy response and fail with the server's status.
func TestOAuthBearerRunFailureFlow(t *testing.T) {
	var sent [][]byte
	server := func(ctx context.Context, msg []byte) ([]byte, error) {
		sent = append(sent, msg)
		switch len(sent) {
		case 1:
			return b64(rfc7628ErrorB64), nil // "+ eyJ..."
		default:
			return nil, errors.New("NO SASL authentication failed")
		}
	}
	err := Run(context.Background(), rfc7628Mech(), server)
	var se *ServerError
	if !errors.As(err, &se) || se.Code != "invalid_token" {
		t.Fatalf("Run error = %v, want server status invalid_token", err)
	}
	if len(sent) != 2 || string(sent[0]) != rfc7628Initial || !bytes.Equal(sent[1], b64("AQ==")) {
		t.Fatalf("client sent %q, want initial response then AQ==", sent)
	}
}

func TestOAuthBearerMinimal(t *testing.T) {
	m := OAuthBearer("abc.DEF-_~+/ghi==")
	if got, want := string(mustStart(t, m)), "n,,\x01auth=Bearer abc.DEF-_~+/ghi==\x01\x01"; got != want {
		t.Fatalf("initial = %q, want %q", got, want)
	}
}

func TestOAuthBearerExtensionsAndEscaping(t *testing.T) {
	m, err := New("OAUTHBEARER", Credentials{
		AuthzID:    "a,b=c",
		Token:      "tok",
		Extensions: map[string]string{"traceid": "42", "logicalCluster": "lkc-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "n,a=a=2Cb=3Dc,\x01logicalCluster=lkc-1\x01traceid=42\x01auth=Bearer tok\x01\x01"
	if got := string(mustStart(t, m)); got != want {
		t.Fatalf("initial = %q, want %q", got, want)
	}
}

func TestOAuthBearerInvalid(t *testing.T) {
	for name, m := range map[string]Mechanism{
		"empty token":     OAuthBearer(""),
		"token with SOH":  OAuthBearer("ab\x01cd"),
		"token with SP":   OAuthBearer("ab cd"),
		"only padding":    OAuthBearer("=="),
		"host with SOH":   OAuthBearer("t", WithHost("h\x01")),
		"port range":      OAuthBearer("t", WithPort(70000)),
		"reserved key":    OAuthBearer("t", WithExtension("auth", "x")),
		"bad key":         OAuthBearer("t", WithExtension("k1", "x")),
		"bad value":       OAuthBearer("t", WithExtension("k", "\x01")),
		"authzid NUL":     OAuthBearer("t", WithAuthzID("a\x00")),
		"authzid bad utf": OAuthBearer("t", WithAuthzID("\xff")),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := m.Start()
			wantErr(t, err, MechOAuthBearer, "start", ErrInvalidCredentials)
			_, _, err = m.Step(nil)
			wantErr(t, err, MechOAuthBearer, "step", ErrFinished)
		})
	}
	_, err := New("OAUTHBEARER", Credentials{})
	wantErr(t, err, MechOAuthBearer, "new", ErrInvalidCredentials)
}

func TestOAuthBearerMalformedErrorChallenge(t *testing.T) {
	for _, ch := range []string{"not json", `{"scope":"x"}`, `{"status":""}`, `{"status":42}`} {
		m := OAuthBearer("tok")
		mustStart(t, m)
		resp, _, err := m.Step([]byte(ch))
		if !bytes.Equal(resp, []byte{1}) {
			t.Errorf("%q: response %q, want \\x01", ch, resp)
		}
		wantErr(t, err, MechOAuthBearer, "server-challenge", ErrMalformedChallenge)
	}
}

func TestOAuthBearerLifecycle(t *testing.T) {
	m := OAuthBearer("tok")
	_, _, err := m.Step(nil)
	wantErr(t, err, MechOAuthBearer, "step", ErrNotStarted)
	mustStart(t, m)
	_, err = m.Start()
	wantErr(t, err, MechOAuthBearer, "start", ErrAlreadyStarted)
}
