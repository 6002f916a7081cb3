package sasl

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/xdg-go/scram"
)

func TestNewAndMechanisms(t *testing.T) {
	want := []string{"OAUTHBEARER", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
	if got := Mechanisms(); !slices.Equal(got, want) {
		t.Fatalf("Mechanisms() = %q, want %q", got, want)
	}
	c := Credentials{Username: "u", Password: "p", Token: "t"}
	for _, name := range want {
		m, err := New(name, c)
		if err != nil {
			t.Fatalf("New(%q): %v", name, err)
		}
		if m.Name() != name {
			t.Errorf("New(%q).Name() = %q", name, m.Name())
		}
	}
	if m, err := New("plain", c); err != nil || m.Name() != "PLAIN" {
		t.Errorf("New is not case-insensitive: %v, %v", m, err)
	}
}

func TestNewUnknownMechanism(t *testing.T) {
	_, err := New("GSSAPI", Credentials{})
	if !errors.Is(err, ErrUnknownMechanism) {
		t.Fatalf("error %v does not wrap ErrUnknownMechanism", err)
	}
	want := "sasl: unknown mechanism GSSAPI (supported: OAUTHBEARER, PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
	if err.Error() != want {
		t.Fatalf("error = %q, want %q", err, want)
	}
	_, err = New("EVIL\r\nNAME", Credentials{})
	if !strings.Contains(err.Error(), `"EVIL\r\nNAME"`) {
		t.Fatalf("control characters not quoted: %q", err)
	}
}

func TestRunSCRAMWithFakeServer(t *testing.T) {
	for _, tc := range []struct {
		mech string
		hash scram.HashGeneratorFcn
	}{{MechScramSHA256, scram.SHA256}, {MechScramSHA512, scram.SHA512}} {
		t.Run(tc.mech, func(t *testing.T) {
			srv := newScramServer(t, tc.hash, "carol", "hunter2", "NaCl", 8192)
			m, err := New(tc.mech, Credentials{Username: "carol", Password: "hunter2"})
			if err != nil {
				t.Fatal(err)
			}
			if err := Run(context.Background(), m, srv.roundTrip); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if !srv.conv.Valid() {
				t.Fatal("server did not validate the client")
			}
			// Reusing the finished mechanism fails.
			srv2 := newScramServer(t, tc.hash, "carol", "hunter2", "NaCl", 8192)
			err = Run(context.Background(), m, srv2.roundTrip)
			wantErr(t, err, tc.mech, "client-first", ErrAlreadyStarted)
		})
	}
}

func TestRunTamperingServer(t *testing.T) {
	// A man in the middle in front of a real server: rewrites the nonce or
	// the server signature.
	tamper := map[string]struct {
		edit func(round int, ch []byte) []byte
		step string
		want error
	}{
		"nonce": {func(round int, ch []byte) []byte {
			if round == 1 {
				return append([]byte("r=x"), ch[2:]...)
			}
			return ch
		}, "server-first", ErrNonceMismatch},
		"signature": {func(round int, ch []byte) []byte {
			if round == 2 {
				sig := b64(string(ch[2:]))
				sig[0] ^= 1
				return []byte("v=" + base64.StdEncoding.EncodeToString(sig))
			}
			return ch
		}, "server-final", ErrServerSignature},
	}
	for name, tc := range tamper {
		t.Run(name, func(t *testing.T) {
			srv := newScramServer(t, scram.SHA256, "u", "p", "salt", 4096)
			round := 0
			rt := func(ctx context.Context, msg []byte) ([]byte, error) {
				round++
				ch, err := srv.roundTrip(ctx, msg)
				return tc.edit(round, ch), err
			}
			m, _ := ScramSHA256("u", "p")
			err := Run(context.Background(), m, rt)
			wantErr(t, err, MechScramSHA256, tc.step, tc.want)
		})
	}
}

func TestRunErrors(t *testing.T) {
	t.Run("round trip error", func(t *testing.T) {
		boom := errors.New("connection reset")
		m, _ := ScramSHA256("u", "p")
		err := Run(context.Background(), m, func(context.Context, []byte) ([]byte, error) { return nil, boom })
		wantErr(t, err, MechScramSHA256, "round trip 1", boom)
	})
	t.Run("canceled before start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		called := false
		err := Run(ctx, Plain("", "u", "p"), func(context.Context, []byte) ([]byte, error) { called = true; return nil, nil })
		wantErr(t, err, MechPlain, "start", context.Canceled)
		if called {
			t.Error("round trip called after cancellation")
		}
	})
	t.Run("canceled mid exchange", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		srv := newScramServer(t, scram.SHA256, "u", "p", "salt", 4096)
		calls := 0
		rt := func(ctx context.Context, msg []byte) ([]byte, error) {
			calls++
			defer cancel()
			return srv.roundTrip(ctx, msg)
		}
		m, _ := ScramSHA256("u", "p")
		err := Run(ctx, m, rt)
		wantErr(t, err, MechScramSHA256, "round trip 2", context.Canceled)
		if calls != 1 {
			t.Errorf("round trip called %d times, want 1", calls)
		}
	})
	t.Run("start error", func(t *testing.T) {
		err := Run(context.Background(), Plain("", "", ""), func(context.Context, []byte) ([]byte, error) {
			t.Fatal("round trip called")
			return nil, nil
		})
		wantErr(t, err, MechPlain, "start", ErrInvalidCredentials)
	})
	t.Run("nil arguments", func(t *testing.T) {
		if err := Run(context.Background(), nil, nil); err == nil {
			t.Fatal("want error")
		}
	})
}

// scripted is a test mechanism that exercises Run's handling of a final
// response returned together with done, and of too many rounds.
type scripted struct {
	steps int
	final []byte
	limit int
}

func (s *scripted) Name() string           { return "TEST" }
func (s *scripted) Start() ([]byte, error) { return nil, nil }
func (s *scripted) Step(ch []byte) ([]byte, bool, error) {
	s.steps++
	if s.limit > 0 && s.steps >= s.limit {
		return s.final, true, nil
	}
	return []byte("more"), false, nil
}

func TestRunFinalResponseAndRoundLimit(t *testing.T) {
	var sent [][]byte
	rt := func(ctx context.Context, msg []byte) ([]byte, error) {
		sent = append(sent, msg)
		return []byte("c"), nil
	}
	if err := Run(context.Background(), &scripted{limit: 2, final: []byte("last")}, rt); err != nil {
		t.Fatal(err)
	}
	if len(sent) != 3 || sent[0] != nil || string(sent[2]) != "last" {
		t.Fatalf("sent %q: want nil initial response, one step, then the final response", sent)
	}
	if err := Run(context.Background(), &scripted{}, rt); err == nil || !strings.Contains(err.Error(), "too many round trips") {
		t.Fatalf("endless mechanism: err = %v", err)
	}
}

// TestSecretsNeverPrinted formats every value and error this package
// produces in every common way and checks no secret shows up.
func TestSecretsNeverPrinted(t *testing.T) {
	const (
		password = "Pa55-w0rd-SECRET"
		token    = "tok-SECRET.abc"
		extval   = "ext-SECRET"
	)
	secrets := []string{password, token, extval, "SECRET",
		base64.StdEncoding.EncodeToString([]byte(password)),
		fmt.Sprintf("%x", password)}

	creds := Credentials{Username: "dave", Password: password, Token: token,
		Extensions: map[string]string{"ext": extval}}
	var values []any
	values = append(values, creds, &creds)
	for _, name := range Mechanisms() {
		m, err := New(name, creds)
		if err != nil {
			t.Fatal(err)
		}
		values = append(values, m)
	}
	p := Plain("", "dave", password)
	o := OAuthBearer(token, WithExtension("ext", extval))
	s256, _ := ScramSHA256("dave", password)
	s512, _ := ScramSHA512("dave", password)
	values = append(values, p, o, s256, s512, struct{ C Credentials }{creds})

	// Drive each into failures and collect the errors.
	var errs []error
	collect := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	mustStart(t, p)
	_, _, err := p.Step([]byte("junk"))
	collect(err)
	_, _, err = p.Step(nil)
	collect(err)
	mustStart(t, o)
	_, _, err = o.Step(b64(rfc7628ErrorB64))
	collect(err)
	mustStart(t, s256)
	_, _, err = s256.Step([]byte("r=zzz,s=AA==,i=4096"))
	collect(err)
	srv := newScramServer(t, scram.SHA512, "dave", "other", "salt", 4096)
	collect(Run(context.Background(), s512, srv.roundTrip))
	_, err = ScramSHA256("dave", password+"\u0007")
	collect(err)
	_, err = OAuthBearer(token + " \x01").Start()
	collect(err)
	_, err = OAuthBearer("t", WithExtension("ext", extval+"\x01")).Start()
	collect(err)
	_, err = New("PLAIN", Credentials{Username: "dave", Password: password + "\x00"})
	collect(err)
	if len(errs) != 9 {
		t.Fatalf("collected %d errors, want 9: %v", len(errs), errs)
	}
	for _, e := range errs {
		values = append(values, e)
	}

	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%60v"}
	for _, v := range values {
		var out []string
		for _, verb := range verbs {
			out = append(out, fmt.Sprintf(verb, v))
		}
		if st, ok := v.(fmt.Stringer); ok {
			out = append(out, st.String())
		}
		if gs, ok := v.(fmt.GoStringer); ok {
			out = append(out, gs.GoString())
		}
		if e, ok := v.(error); ok {
			out = append(out, e.Error())
		}
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "v", v)
		slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "v", v)
		out = append(out, buf.String())
		for _, o := range out {
			for _, sec := range secrets {
				if strings.Contains(o, sec) {
					t.Errorf("output leaks a secret (%T): %q", v, o)
				}
			}
		}
	}
	// Sanity: the redacted forms still say something useful.
	if got := fmt.Sprint(creds); !strings.Contains(got, `Username:"dave"`) || !strings.Contains(got, "<redacted>") {
		t.Errorf("Credentials String = %q", got)
	}
}
