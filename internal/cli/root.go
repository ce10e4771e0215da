package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/outpost-iot/outpost/internal/config"
)

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

// Execute runs the command line and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var ec *exitCodeError
		if errors.As(err, &ec) {
			return ec.code
		}
		fmt.Fprintln(stderr, "ERROR:", strings.TrimSpace(err.Error()))
		return exitCode(err)
	}
	return 0
}

// NewRoot builds the command tree.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "outpost",
		Short:         "A self-hostable, Azure-compatible IoT hub with managed identities",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	// Flag and argument mistakes are usage errors (exit 2) that point at --help.
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageErrorf("%v (see '%s --help')", err, cmd.CommandPath())
	})
	addOutputFlags(root)
	root.PersistentFlags().String("subscription", "", "subscription id (default: AZURE_SUBSCRIPTION_ID, else the node's)")
	root.PersistentFlags().String("data-dir", config.DefaultDataDir(), "directory holding the CA, database and streams (env OUTPOST_DATA_DIR)")
	root.AddCommand(newServeCommand(), newEnvCommand(), newRunCommand(), newADCommand(), newBenchCommand(), newIoTCommand(), newEventHubsCommand(), newDeploymentCommand(), newResourceCommand(), newGroupCommand(), newIdentityCommand(), newRoleCommand())
	root.AddCommand(newLoginCommands()...)
	root.AddCommand(newStorageCommand(), newServiceBusCommand())
	return root
}

// dataDir reads --data-dir, falling back to OUTPOST_DATA_DIR.
func dataDir(cmd *cobra.Command) string {
	f := cmd.Flags().Lookup("data-dir")
	if !f.Changed {
		if v := os.Getenv("OUTPOST_DATA_DIR"); v != "" {
			return v
		}
	}
	return f.Value.String()
}

// envName maps a flag name to its environment variable: --nats-url → OUTPOST_NATS_URL.
func envName(flag string) string {
	return "OUTPOST_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every flag the command line left unset from its OUTPOST_*
// variable, using the flag's own parser so both forms accept the same values.
func applyEnv(fs *pflag.FlagSet) error {
	var errs []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: %v", envName(f.Name), v, err))
			}
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("environment: %s", strings.Join(errs, "; "))
	}
	return nil
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
