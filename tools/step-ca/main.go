// Command step-ca is the project's own entry point for Smallstep's step-ca 0.19, built from
// Debian's Go source package golang-github-smallstep-certificates-dev (which ships no cmd/).
//
// Build it with scripts/build-step-ca.sh (GOPATH=/usr/share/gocode GO111MODULE=off GOPROXY=off).
// Usage is upstream's: step-ca <ca.json> [--password-file FILE] [--resolver ADDR] ...
//
// The library's commands.AppCommand is run as a subcommand ("start") of a urfave/cli app, the
// way upstream's cmd/step-ca did: assigning its Action to the app directly breaks flag parsing
// (the app would not know the command's flags). When the first argument is not a known
// subcommand or a help/version flag, "start" is inserted in front of the arguments.
package main

import (
	"fmt"
	"os"

	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/commands"
	"github.com/urfave/cli"
	"go.step.sm/cli-utils/command"
	"go.step.sm/cli-utils/step"
)

// Version is reported by /version and --version.
var Version = "0.19.0-phoenix"

func main() {
	step.Set("Smallstep CA", Version, "N/A")
	authority.GlobalVersion.Version = Version

	app := cli.NewApp()
	app.Name = "step-ca"
	app.HelpName = "step-ca"
	app.Version = step.Version()
	app.Usage = "an online certificate authority for secure automated certificate management"
	app.UsageText = "step-ca <config> [--password-file=<file>] [--resolver=<addr>]"
	app.Writer = os.Stdout
	app.ErrWriter = os.Stderr
	// "start" (the CA itself) plus what the library registers (export, onboard).
	app.Commands = append([]cli.Command{commands.AppCommand}, command.Retrieve()...)

	app.Action = func(ctx *cli.Context) error {
		return cli.ShowAppHelp(ctx)
	}

	if err := app.Run(withStart(app, os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// withStart inserts "start" after the program name unless the first argument already names a
// subcommand or asks for help/version.
func withStart(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	switch args[1] {
	case "-h", "--help":
		// urfave/cli v1 reports the bare flag as "Incorrect Usage"; the help command does not.
		return []string{args[0], "help"}
	case "-v", "--version":
		return args
	}
	for _, c := range app.Commands {
		if c.HasName(args[1]) {
			return args
		}
	}
	out := make([]string, 0, len(args)+1)
	out = append(out, args[0], "start")
	return append(out, args[1:]...)
}
