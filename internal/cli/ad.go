package cli

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func newADCommand() *cobra.Command {
	ad := &cobra.Command{Use: "ad", Short: "Manage the tenant's principals (service principals and users)"}
	sp := &cobra.Command{Use: "sp", Short: "Service principals (applications with secrets)"}
	user := &cobra.Command{Use: "user", Short: "Users (portal sign-in)"}
	ad.AddCommand(sp, user)

	var name string
	create := &cobra.Command{
		Use: "create --name NAME", Short: "Create a service principal; prints its appId and password (shown once)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return errors.New("--name is required")
			}
			return callAndPrint(cmd, "POST", "/outpost/directory/servicePrincipals", map[string]string{"displayName": name})
		},
	}
	create.Flags().StringVar(&name, "name", "", "display name")
	sp.AddCommand(create,
		&cobra.Command{Use: "list", Short: "List service principals", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
			return callAndPrint(cmd, "GET", "/outpost/directory/servicePrincipals", nil)
		}},
		idCommand("show", "Show a service principal", "GET", ""),
		idCommand("delete", "Delete a service principal (and its role assignments)", "DELETE", ""))
	cred := &cobra.Command{Use: "credential", Short: "Service principal credentials"}
	var id string
	var appendSecret bool
	var certFile string
	reset := &cobra.Command{
		Use: "reset --id ID [--append] [--cert FILE]", Short: "Create a new client secret (replacing the others unless --append), or add a certificate", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				return errors.New("--id is required (object id or app id)")
			}
			body := map[string]any{"append": appendSecret}
			if certFile != "" {
				pem, err := os.ReadFile(strings.TrimPrefix(certFile, "@"))
				if err != nil {
					return fmt.Errorf("--cert: %w", err)
				}
				body["certificate"] = string(pem)
			}
			return callAndPrint(cmd, "POST", "/outpost/directory/servicePrincipals/"+url.PathEscape(id)+"/resetCredential", body)
		},
	}
	reset.Flags().StringVar(&id, "id", "", "object id or app id")
	reset.Flags().BoolVar(&appendSecret, "append", false, "keep the existing secrets")
	reset.Flags().StringVar(&certFile, "cert", "", "PEM certificate file (or @file) whose key may sign client assertions")
	cred.AddCommand(reset)
	sp.AddCommand(cred)

	var uname, password string
	ucreate := &cobra.Command{
		Use: "create --name NAME --password PASSWORD", Short: "Create a user", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if uname == "" || password == "" {
				return errors.New("--name and --password are required")
			}
			return callAndPrint(cmd, "POST", "/outpost/directory/users", map[string]string{"name": uname, "password": password})
		},
	}
	ucreate.Flags().StringVar(&uname, "name", "", "sign-in name")
	ucreate.Flags().StringVar(&password, "password", "", "password (at least 8 characters)")
	var dname string
	udelete := &cobra.Command{
		Use: "delete --name NAME", Short: "Delete a user", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dname == "" {
				return errors.New("--name is required")
			}
			return callAndPrint(cmd, "DELETE", "/outpost/directory/users/"+url.PathEscape(dname), nil)
		},
	}
	udelete.Flags().StringVar(&dname, "name", "", "sign-in name")
	user.AddCommand(ucreate, udelete, &cobra.Command{Use: "list", Short: "List users", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return callAndPrint(cmd, "GET", "/outpost/directory/users", nil)
		}})
	return ad
}

// idCommand is a command taking --id that calls one service principal.
func idCommand(use, short, method, suffix string) *cobra.Command {
	var id string
	c := &cobra.Command{
		Use: use + " --id ID", Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				return errors.New("--id is required (object id or app id)")
			}
			return callAndPrint(cmd, method, "/outpost/directory/servicePrincipals/"+url.PathEscape(id)+suffix, nil)
		},
	}
	c.Flags().StringVar(&id, "id", "", "object id or app id")
	return c
}

func callAndPrint(cmd *cobra.Command, method, path string, in any) error {
	c, err := newAPIClient(cmd)
	if err != nil {
		return err
	}
	var out any
	if err := c.do(cmd.Context(), method, path, in, &out); err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return emit(cmd, out, nil)
}
