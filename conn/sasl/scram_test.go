package sasl

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/xdg-go/scram"
)

// RFC 7677 section 3.
const (
	rfc7677Nonce       = "rOprNGfwEbeRWgbNEkqO"
	rfc7677ClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfc7677ServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfc7677ClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfc7677ServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

func rfc7677Mech(t *testing.T) *scramMechanism {
	t.Helper()
	m, err := newScram(MechScramSHA256, "", "user", "pencil", fixedNonce(rfc7677Nonce))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestScramSHA256RFC7677Vector(t *testing.T) {
	m := rfc7677Mech(t)
	if m.Name() != "SCRAM-SHA-256" {
		t.Fatalf("Name = %q", m.Name())
	}
	if got := string(mustStart(t, m)); got != rfc7677ClientFirst {
		t.Fatalf("client-first = %q, want %q", got, rfc7677ClientFirst)
	}
	final, done := mustStep(t, m, rfc7677ServerFirst)
	if done || string(final) != rfc7677ClientFinal {
		t.Fatalf("client-final = %q (done %v), want %q", final, done, rfc7677ClientFinal)
	}
	resp, done := mustStep(t, m, rfc7677ServerFinal)
	if !done || resp != nil {
		t.Fatalf("after server-final: resp %q done %v, want nil true", resp, done)
	}
	// Single use.
	_, _, err := m.Step([]byte(rfc7677ServerFinal))
	wantErr(t, err, MechScramSHA256, "step", ErrFinished)
	_, err = m.Start()
	wantErr(t, err, MechScramSHA256, "client-first", ErrAlreadyStarted)
}

// Vectors shipped with xdg-go/scram's test data (not from an RFC): SHA-512
// and a SASLprep case whose user name and password need normalizing.
func TestScramLibraryVectors(t *testing.T) {
	tests := []struct {
		name, mech, user, pass, nonce string
		steps                         [4]string
	}{
		{
			name: "SHA-512", mech: MechScramSHA512, user: "user", pass: "pencil",
			nonce: "/uAp+YhRXyuq+1zS3YWsUsZHpxLfGkcQ",
			steps: [4]string{
				"n,,n=user,r=/uAp+YhRXyuq+1zS3YWsUsZHpxLfGkcQ",
				"r=/uAp+YhRXyuq+1zS3YWsUsZHpxLfGkcQ4FHzBxBhPzykjGStpoxdfs4Nyp1mtC9B,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000",
				"c=biws,r=/uAp+YhRXyuq+1zS3YWsUsZHpxLfGkcQ4FHzBxBhPzykjGStpoxdfs4Nyp1mtC9B,p=E2tqtuwJz5ShFuck1/KeqZKCmGZe/Lxjyr6fTZio21wZtlpgyeYLNxxQXrLuK/FfMSCanyDRmI1q5KL1Tj54nQ==",
				"v=qKOkLNGdt0VrlVkoL3kXjhWmI4SjEfqw8ogXgikzbPOMh6gloo8Mrboq/q3cz0/7hIvcQ1N9VL4m7iiSTTyolQ==",
			},
		},
		{
			name: "SASLprep", mech: MechScramSHA256, user: "ramo\u0301n", pass: "p\u212bssword",
			nonce: "clientNONCE",
			steps: [4]string{
				"n,,n=ram\u00f3n,r=clientNONCE",
				"r=clientNONCEserverNONCE,s=c2FsdFNBTFRzYWx0,i=4096",
				"c=biws,r=clientNONCEserverNONCE,p=KXgIc8B+d5k3zx1P4rfs4TiybIlv11O85Jl1TrzEsfI=",
				"v=zG9u+MI5GPTROhnW/W1PUCKV4Uvp2SHzwFOZV9Hth/c=",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := newScram(tc.mech, "", tc.user, tc.pass, fixedNonce(tc.nonce))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(mustStart(t, m)); got != tc.steps[0] {
				t.Fatalf("client-first = %q, want %q", got, tc.steps[0])
			}
			if got, _ := mustStep(t, m, tc.steps[1]); string(got) != tc.steps[2] {
				t.Fatalf("client-final = %q, want %q", got, tc.steps[2])
			}
			if _, done := mustStep(t, m, tc.steps[3]); !done {
				t.Fatal("not done after server-final")
			}
		})
	}
}

func TestScramSHA512RoundTripWithServer(t *testing.T) {
	const salt, iters = "known-salt-1234", 4096
	srv := newScramServer(t, scram.SHA512, "alice", "correct horse", salt, iters)
	m, err := ScramSHA512("alice", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), m, srv.roundTrip); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !srv.conv.Valid() || srv.conv.Username() != "alice" {
		t.Fatalf("server did not authenticate alice (valid %v user %q)", srv.conv.Valid(), srv.conv.Username())
	}
	if len(srv.msgs) != 2 || !strings.HasPrefix(srv.msgs[0], "n,,n=alice,r=") {
		t.Fatalf("client messages = %q", srv.msgs)
	}
	if !strings.Contains(srv.msgs[1], ",p=") {
		t.Fatalf("client-final has no proof: %q", srv.msgs[1])
	}
}

func TestScramSHA256RunWithServer(t *testing.T) {
	srv := newScramServer(t, scram.SHA256, "bob", "pässwörd", "salt", 4096)
	m, err := New("scram-sha-256", Credentials{Username: "bob", Password: "pässwörd"})
	if err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), m, srv.roundTrip); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !srv.conv.Valid() {
		t.Fatal("server did not accept the proof")
	}
}

func TestScramWrongServerSignature(t *testing.T) {
	m := rfc7677Mech(t)
	mustStart(t, m)
	mustStep(t, m, rfc7677ServerFirst)
	// A verifier of the right length that the server could only produce
	// without knowing the stored key.
	_, done, err := m.Step([]byte("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))
	if !done {
		t.Error("done = false after failure")
	}
	wantErr(t, err, MechScramSHA256, "server-final", ErrServerSignature)
	if got, want := err.Error(), "sasl: SCRAM-SHA-256: server-final: server signature mismatch"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	_, _, err = m.Step([]byte(rfc7677ServerFinal))
	wantErr(t, err, MechScramSHA256, "step", ErrFinished)
}

func TestScramReplayedServerFinal(t *testing.T) {
	// A server-final that is genuine for another exchange (the RFC 7677 one,
	// same user, password and salt) must not verify this exchange, whose
	// nonces differ.
	srv := newScramServer(t, scram.SHA256, "user", "pencil", string(b64("W22ZaJ0SNY7soEsUEjb6gQ==")), 4096)
	m, err := ScramSHA256("user", "pencil")
	if err != nil {
		t.Fatal(err)
	}
	sfirst, err := srv.roundTrip(context.Background(), mustStart(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Step(sfirst); err != nil {
		t.Fatal(err)
	}
	_, _, err = m.Step([]byte(rfc7677ServerFinal))
	wantErr(t, err, MechScramSHA256, "server-final", ErrServerSignature)
}

func TestScramTamperedNonce(t *testing.T) {
	for name, sfirst := range map[string]string{
		"different":  "r=XXXXNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"truncated":  "r=rOprNGfwEbeRW,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"not-extend": "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	} {
		t.Run(name, func(t *testing.T) {
			m := rfc7677Mech(t)
			mustStart(t, m)
			resp, done, err := m.Step([]byte(sfirst))
			if resp != nil || !done {
				t.Errorf("resp %q done %v after failure", resp, done)
			}
			wantErr(t, err, MechScramSHA256, "server-first", ErrNonceMismatch)
			_, _, err = m.Step([]byte(rfc7677ServerFinal))
			wantErr(t, err, MechScramSHA256, "step", ErrFinished)
		})
	}
}

func TestScramServerErrorInvalidProof(t *testing.T) {
	m := rfc7677Mech(t)
	mustStart(t, m)
	mustStep(t, m, rfc7677ServerFirst)
	_, done, err := m.Step([]byte("e=invalid-proof"))
	if !done {
		t.Error("done = false after failure")
	}
	wantErr(t, err, MechScramSHA256, "server-final", nil)
	var se *ServerError
	if !errors.As(err, &se) || se.Code != "invalid-proof" {
		t.Fatalf("error %v: want *ServerError with code invalid-proof", err)
	}
	if got, want := err.Error(), "sasl: SCRAM-SHA-256: server-final: server error: invalid-proof"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestScramRunWrongPasswordGetsInvalidProof(t *testing.T) {
	srv := newScramServer(t, scram.SHA256, "user", "pencil", "salt", 4096)
	m, err := ScramSHA256("user", "crayon")
	if err != nil {
		t.Fatal(err)
	}
	err = Run(context.Background(), m, srv.roundTrip)
	var se *ServerError
	if !errors.As(err, &se) || se.Code != "invalid-proof" {
		t.Fatalf("Run error %v: want server error invalid-proof", err)
	}
	wantErr(t, err, MechScramSHA256, "server-final", nil)
}

func TestScramRunUnknownUser(t *testing.T) {
	srv := newScramServer(t, scram.SHA256, "user", "pencil", "salt", 4096)
	m, err := ScramSHA256("mallory", "pencil")
	if err != nil {
		t.Fatal(err)
	}
	err = Run(context.Background(), m, srv.roundTrip)
	var se *ServerError
	if !errors.As(err, &se) || se.Code != "unknown-user" {
		t.Fatalf("Run error %v: want server error unknown-user", err)
	}
	wantErr(t, err, MechScramSHA256, "server-first", nil)
}

func TestScramMalformedServerMessages(t *testing.T) {
	firsts := map[string]struct {
		msg  string
		want error
	}{
		"empty":         {"", ErrMalformedChallenge},
		"no-nonce":      {"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", ErrMalformedChallenge},
		"no-salt":       {"r=rOprNGfwEbeRWgbNEkqOxyz,i=4096", ErrMalformedChallenge},
		"bad-salt":      {"r=rOprNGfwEbeRWgbNEkqOxyz,s=!!!,i=4096", ErrMalformedChallenge},
		"bad-iters":     {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=many", ErrMalformedChallenge},
		"few-iters":     {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1024", ErrIterationCount},
		"huge-iters":    {"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2000000000", ErrIterationCount},
		"mext-not-supp": {"m=ext,r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", ErrMalformedChallenge},
	}
	for name, tc := range firsts {
		t.Run("server-first/"+name, func(t *testing.T) {
			m := rfc7677Mech(t)
			mustStart(t, m)
			_, _, err := m.Step([]byte(tc.msg))
			wantErr(t, err, MechScramSHA256, "server-first", tc.want)
		})
	}
	for name, msg := range map[string]string{
		"empty":     "",
		"no-v":      "x=abc",
		"bad-b64":   "v=***",
		"empty-v":   "v=",
		"proof-msg": rfc7677ClientFinal,
	} {
		t.Run("server-final/"+name, func(t *testing.T) {
			m := rfc7677Mech(t)
			mustStart(t, m)
			mustStep(t, m, rfc7677ServerFirst)
			_, _, err := m.Step([]byte(msg))
			wantErr(t, err, MechScramSHA256, "server-final", ErrMalformedChallenge)
		})
	}
	t.Run("server-first/e=", func(t *testing.T) {
		m := rfc7677Mech(t)
		mustStart(t, m)
		_, _, err := m.Step([]byte("e=other-error"))
		var se *ServerError
		if !errors.As(err, &se) || se.Code != "other-error" {
			t.Fatalf("error %v: want ServerError other-error", err)
		}
	})
}

func TestScramLifecycle(t *testing.T) {
	m := rfc7677Mech(t)
	_, _, err := m.Step([]byte(rfc7677ServerFirst))
	wantErr(t, err, MechScramSHA256, "step", ErrNotStarted)
	mustStart(t, m)
	_, err = m.Start()
	wantErr(t, err, MechScramSHA256, "client-first", ErrAlreadyStarted)
	// The failed second Start must not disturb the running exchange.
	if got, _ := mustStep(t, m, rfc7677ServerFirst); string(got) != rfc7677ClientFinal {
		t.Fatalf("client-final = %q", got)
	}
}

func TestScramNewErrors(t *testing.T) {
	_, err := ScramSHA256("", "pw")
	wantErr(t, err, MechScramSHA256, "new", ErrInvalidCredentials)
	// U+0007 is prohibited by SASLprep; the error must not echo the value.
	const pw = "bell\u0007secret"
	_, err = ScramSHA512("user", pw)
	wantErr(t, err, MechScramSHA512, "new", ErrInvalidCredentials)
	if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "0007") {
		t.Fatalf("error leaks the password: %q", err)
	}
	_, err = ScramSHA256("us\u0007er", "pw")
	wantErr(t, err, MechScramSHA256, "new", ErrInvalidCredentials)
	_, err = New(MechScramSHA256, Credentials{Username: "u", Password: "p", AuthzID: "\u0007"})
	wantErr(t, err, MechScramSHA256, "new", ErrInvalidCredentials)
}

func TestScramAuthzIDAndEscaping(t *testing.T) {
	m, err := newScram(MechScramSHA256, "ad=min", "us,er", "pw", fixedNonce("abc"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(mustStart(t, m)), "n,a=ad=3Dmin,n=us=2Cer,r=abc"; got != want {
		t.Fatalf("client-first = %q, want %q", got, want)
	}
}

func TestScramRandomNonce(t *testing.T) {
	a, _ := ScramSHA256("u", "p")
	b, _ := ScramSHA256("u", "p")
	fa, fb := string(mustStart(t, a)), string(mustStart(t, b))
	if fa == fb {
		t.Fatal("two exchanges used the same nonce")
	}
	nonce := strings.TrimPrefix(fa, "n,,n=u,r=")
	if len(nonce) < 24 || strings.ContainsAny(nonce, ", ") {
		t.Fatalf("weak or invalid nonce %q", nonce)
	}
}

func TestScramBadInjectedNonce(t *testing.T) {
	m, err := newScram(MechScramSHA256, "", "u", "p", fixedNonce("a,b"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Start()
	wantErr(t, err, MechScramSHA256, "client-first", nil)
}
