package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// inheritedCredentials are the variables that would make
// DefaultAzureCredential use something other than the managed identity.
var inheritedCredentials = []string{
	"AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_CLIENT_CERTIFICATE_PATH",
	"AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE",
	"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT",
}

func newRunCommand() *cobra.Command {
	var as, clientID string
	cmd := &cobra.Command{
		Use:   "run --as RESOURCE_ID -- COMMAND [ARGS...]",
		Short: "Run a program with a resource's managed identity",
		Long: "Run a program as if it ran inside the resource: it gets IDENTITY_ENDPOINT and\n" +
			"IDENTITY_HEADER (the App Service protocol azidentity and @azure/identity use), and\n" +
			"inherited AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_TENANT_ID are removed, so\n" +
			"DefaultAzureCredential really runs as the managed identity.\n\n" +
			"RESOURCE_ID is a user-assigned identity, or a resource with a system-assigned identity.\n" +
			"--client-id sets AZURE_CLIENT_ID to pick one of the resource's user-assigned identities.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if as == "" {
				return errors.New("--as is required: the resource id whose identity the program gets")
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			var out struct {
				IdentityEndpoint string `json:"identityEndpoint"`
				IdentityHeader   string `json:"identityHeader"`
			}
			if err := c.do(cmd.Context(), "POST", "/outpost/identity/runAs", map[string]string{"resourceId": as}, &out); err != nil {
				return err
			}
			env := childEnv(os.Environ(), out.IdentityEndpoint, out.IdentityHeader, clientID)
			return runChild(cmd, args, env)
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "resource id whose managed identity the program gets")
	cmd.Flags().StringVar(&clientID, "client-id", "", "client id of the user-assigned identity to use (sets AZURE_CLIENT_ID)")
	return cmd
}

// childEnv strips inherited credentials and adds the managed identity endpoint.
func childEnv(parent []string, endpoint, header, clientID string) []string {
	env := make([]string, 0, len(parent)+3)
	for _, kv := range parent {
		name, _, _ := strings.Cut(kv, "=")
		strip := false
		for _, c := range inheritedCredentials {
			strip = strip || name == c
		}
		if !strip {
			env = append(env, kv)
		}
	}
	env = append(env, "IDENTITY_ENDPOINT="+endpoint, "IDENTITY_HEADER="+header)
	if clientID != "" {
		env = append(env, "AZURE_CLIENT_ID="+clientID)
	}
	return env
}

// runChild runs the program, forwards interrupts, and exits with its code.
func runChild(cmd *cobra.Command, args, env []string) error {
	child := exec.Command(args[0], args[1:]...)
	child.Env = env
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()
	if err := child.Start(); err != nil {
		return fmt.Errorf("start %s: %w", args[0], err)
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = child.Process.Signal(s)
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return &exitCodeError{code: ee.ExitCode()}
			}
			return err
		}
	}
}

// exitCodeError makes Execute exit with the child's code without printing.
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }
