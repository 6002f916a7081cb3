module github.com/tendril-db/tendril

go 1.26.8

require (
	github.com/hashicorp/go-multierror v1.1.1
	github.com/jackc/puddle/v2 v2.2.3
	github.com/spf13/cobra v1.10.2
	github.com/xdg-go/scram v1.4.0
	github.com/xdg-go/stringprep v1.0.4
	go.uber.org/goleak v1.3.0
)

require (
	github.com/hashicorp/errwrap v1.0.0 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	golang.org/x/sync v0.1.0 // indirect
	golang.org/x/text v0.3.8 // indirect
)
