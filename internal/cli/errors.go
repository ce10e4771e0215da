package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes, as az uses them: 1 for a failed command, 2 for a command line
// that could not be parsed, 3 for a resource that does not exist.
const (
	exitError    = 1
	exitUsage    = 2
	exitNotFound = 3
)

// usageError is a command line the command can't run: exit code 2 and a
// pointer to --help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// apiError is an error answer from Outpost: its code and message, printed
// as az prints them ("(Code) message").
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string {
	if e.Code == "" {
		return e.Message
	}
	return "(" + e.Code + ") " + e.Message
}

// exitCode maps err to the process exit code.
func exitCode(err error) int {
	var ue *usageError
	var ae *apiError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ae) && (ae.Status == 404 || strings.HasSuffix(ae.Code, "NotFound")):
		return exitNotFound
	}
	return exitError
}

// requireFlags fails with a usage error naming every listed flag the command
// line left out, in az's words.
func requireFlags(cmd *cobra.Command, names ...string) error {
	var missing []string
	for _, n := range names {
		f := cmd.Flags().Lookup(n)
		if f == nil || f.Changed {
			continue
		}
		spelled := "--" + n
		if f.Shorthand != "" {
			spelled += "/-" + f.Shorthand
		}
		missing = append(missing, spelled)
	}
	if len(missing) == 0 {
		return nil
	}
	return usageErrorf("the following arguments are required: %s (see '%s --help')", strings.Join(missing, ", "), cmd.CommandPath())
}
