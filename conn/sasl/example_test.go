package sasl_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/tendril-db/tendril/conn/sasl"
	"github.com/xdg-go/scram"
)

// A backend picks a mechanism by name and supplies only the framing: here
// the "wire" is an in-process SCRAM-SHA-256 server from xdg-go/scram.
func Example() {
	server := newServer("app", "s3cret")

	mech, err := sasl.New("SCRAM-SHA-256", sasl.Credentials{Username: "app", Password: "s3cret"})
	if err != nil {
		fmt.Println(err)
		return
	}
	err = sasl.Run(context.Background(), mech, func(ctx context.Context, msg []byte) ([]byte, error) {
		// A real backend writes msg in its protocol's framing (for example
		// a Kafka SaslAuthenticate request) and returns the server's reply.
		reply, err := server.Step(string(msg))
		if err != nil && reply == "" {
			return nil, err
		}
		return []byte(reply), nil
	})
	fmt.Println("authenticated:", err == nil, "server agrees:", server.Valid())
	fmt.Println(mech) // never shows the password

	// Unknown mechanisms are reported with the supported ones.
	_, err = sasl.New("GSSAPI", sasl.Credentials{})
	fmt.Println(err, errors.Is(err, sasl.ErrUnknownMechanism))

	// Output:
	// authenticated: true server agrees: true
	// sasl.Mechanism{Name:SCRAM-SHA-256, AuthzID:"", Username:"app", Password:<redacted>, State:done}
	// sasl: unknown mechanism GSSAPI (supported: OAUTHBEARER, PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) true
}

func newServer(user, password string) *scram.ServerConversation {
	client, _ := scram.SHA256.NewClient(user, password, "")
	creds, _ := client.GetStoredCredentialsWithError(scram.KeyFactors{Salt: "salt", Iters: 4096})
	srv, _ := scram.SHA256.NewServer(func(string) (scram.StoredCredentials, error) { return creds, nil })
	return srv.NewConversation()
}

func ExampleOAuthBearer() {
	mech := sasl.OAuthBearer("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
		sasl.WithAuthzID("user@example.com"), sasl.WithHost("server.example.com"), sasl.WithPort(143))
	initial, _ := mech.Start()
	fmt.Printf("%q\n", initial)

	// The server rejects the token with an RFC 7628 error challenge.
	resp, _, err := mech.Step([]byte(`{"status":"invalid_token","scope":"example_scope"}`))
	fmt.Printf("send %q, then fail: %v\n", resp, err)
	// Output:
	// "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
	// send "\x01", then fail: sasl: OAUTHBEARER: server-challenge: server error: invalid_token (scope example_scope)
}
