package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// jobPollInterval is how often `job create --wait` asks for the job.
const jobPollInterval = 500 * time.Millisecond

// hubJob is the part of JobProperties the CLI reads; it prints the whole
// answer as the server sent it.
type hubJob struct {
	JobID         string `json:"jobId"`
	Type          string `json:"type"`
	Status        string `json:"status"`
	Progress      int    `json:"progress"`
	FailureReason string `json:"failureReason"`
}

func (j hubJob) final() bool {
	return j.Status == "completed" || j.Status == "failed" || j.Status == "cancelled"
}

// newJobCommand is `outpost iot hub job`: a hub's bulk import/export jobs
// through Outpost's API (/outpost/iothubs/{name}/jobs), with the operator's
// credentials.
func newJobCommand() *cobra.Command {
	job := &cobra.Command{Use: "job", Short: "Bulk device import/export jobs of a hub"}
	var hubName, jobID string
	hubFlag := func(c *cobra.Command) { c.Flags().StringVarP(&hubName, "hub-name", "n", "", "hub name") }
	idFlag := func(c *cobra.Command) { c.Flags().StringVar(&jobID, "job-id", "", "job id") }
	jobsPath := func() string { return "/outpost/iothubs/" + url.PathEscape(hubName) + "/jobs" }
	need := func(withID bool) error {
		if hubName == "" {
			return errors.New("--hub-name (-n) is required")
		}
		if withID && jobID == "" {
			return errors.New("--job-id is required")
		}
		return nil
	}

	var (
		jobType, inputURI, outputURI, inputBlob, outputBlob, authType, identity string
		excludeKeys, wait                                                       bool
	)
	create := &cobra.Command{
		Use:   "create --hub-name NAME --job-type import|export --output-container-uri URI [--input-container-uri URI]",
		Short: "Start an import or export of the hub's device registry",
		Long: "Start an import or export of the hub's device registry. With key-based storage authentication (the\n" +
			"default) the container URIs carry a SAS; with --auth-type identity the hub reaches storage with its\n" +
			"system-assigned identity, or with the user-assigned identity --identity names. --wait follows the job\n" +
			"to its end (a progress line on a terminal) and prints it; a failed or cancelled job exits non-zero.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(false); err != nil {
				return err
			}
			if jobType == "" || outputURI == "" {
				return errors.New("--job-type (import or export) and --output-container-uri are required")
			}
			body := map[string]any{"type": jobType, "outputBlobContainerUri": outputURI, "excludeKeysInExport": excludeKeys}
			if inputURI != "" {
				body["inputBlobContainerUri"] = inputURI
			}
			if inputBlob != "" {
				body["inputBlobName"] = inputBlob
			}
			if outputBlob != "" {
				body["outputBlobName"] = outputBlob
			}
			auth, err := storageAuth(authType, identity)
			if err != nil {
				return err
			}
			body["storageAuthenticationType"] = auth
			if identity != "" && !strings.EqualFold(identity, "[system]") {
				body["identity"] = map[string]string{"userAssignedIdentity": identity}
			}
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var out json.RawMessage
			if err := c.do(ctx, "POST", jobsPath()+"/create", body, &out); err != nil {
				return err
			}
			if !wait {
				return emitRaw(cmd, out)
			}
			var j hubJob
			if err := json.Unmarshal(out, &j); err != nil || j.JobID == "" {
				return fmt.Errorf("the answer to create is not a job: %s", out)
			}
			return waitForJob(ctx, c, cmd, jobsPath()+"/"+url.PathEscape(j.JobID))
		},
	}
	hubFlag(create)
	create.Flags().StringVar(&jobType, "job-type", "", "import or export")
	create.Flags().StringVar(&inputURI, "input-container-uri", "", "container holding the blob to import (import jobs)")
	create.Flags().StringVar(&outputURI, "output-container-uri", "", "container the export, or the import's error log, is written to")
	create.Flags().StringVar(&inputBlob, "input-blob-name", "", "blob to import (default devices.txt)")
	create.Flags().StringVar(&outputBlob, "output-blob-name", "", "blob to export to (default devices.txt)")
	create.Flags().StringVar(&authType, "auth-type", "", "storage authentication: key (a SAS in each URI) or identity (default: key, or identity when --identity is set)")
	create.Flags().StringVar(&identity, "identity", "", "with --auth-type identity: a user-assigned identity's resource id on the hub, or [system]")
	create.Flags().BoolVar(&excludeKeys, "exclude-keys", false, "export the devices without their keys")
	create.Flags().BoolVar(&wait, "wait", false, "wait until the job ends and print it")
	job.AddCommand(create)

	show := &cobra.Command{
		Use:   "show --hub-name NAME --job-id ID",
		Short: "Show a job",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(true); err != nil {
				return err
			}
			return jobCall(cmd, "GET", jobsPath()+"/"+url.PathEscape(jobID), "")
		},
	}
	hubFlag(show)
	idFlag(show)
	job.AddCommand(show)

	list := &cobra.Command{
		Use:   "list --hub-name NAME",
		Short: "List the hub's jobs, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(false); err != nil {
				return err
			}
			return jobCall(cmd, "GET", jobsPath(), "value")
		},
	}
	hubFlag(list)
	job.AddCommand(list)

	cancel := &cobra.Command{
		Use:   "cancel --hub-name NAME --job-id ID",
		Short: "Cancel a job: at once when queued, at its next batch when running",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := need(true); err != nil {
				return err
			}
			return jobCall(cmd, "DELETE", jobsPath()+"/"+url.PathEscape(jobID), "")
		},
	}
	hubFlag(cancel)
	idFlag(cancel)
	job.AddCommand(cancel)
	return job
}

// jobCall sends one request and prints the answer, or only its member
// when member is not "".
func jobCall(cmd *cobra.Command, method, path, member string) error {
	c, err := newAPIClient(cmd)
	if err != nil {
		return err
	}
	var out json.RawMessage
	if err := c.do(cmd.Context(), method, path, nil, &out); err != nil {
		return err
	}
	if member == "" {
		return emitRaw(cmd, out)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		return fmt.Errorf("decode the answer: %w", err)
	}
	v := m[member]
	if len(v) == 0 || string(v) == "null" {
		v = json.RawMessage("[]")
	}
	return emitRaw(cmd, v)
}

// storageAuth turns --auth-type and --identity into storageAuthenticationType.
func storageAuth(authType, identity string) (string, error) {
	switch strings.ToLower(authType) {
	case "":
		if identity != "" {
			return "identityBased", nil
		}
		return "keyBased", nil
	case "key", "keybased":
		if identity != "" {
			return "", errors.New("--identity is used with --auth-type identity; drop it to use the SAS in the container URIs")
		}
		return "keyBased", nil
	case "identity", "identitybased":
		return "identityBased", nil
	}
	return "", fmt.Errorf("--auth-type %q: use key or identity", authType)
}

// waitForJob polls a job until it ends, drawing a progress line on stderr
// when that is a terminal, then prints the job; a job that did not complete
// is an error (exit status 1) after it is printed.
func waitForJob(ctx context.Context, c *apiClient, cmd *cobra.Command, path string) error {
	errOut := cmd.ErrOrStderr()
	live := isTerminal(errOut)
	var (
		out json.RawMessage
		j   hubJob
	)
	for {
		out = nil
		if err := c.do(ctx, "GET", path, nil, &out); err != nil {
			if live {
				fmt.Fprintln(errOut)
			}
			return err
		}
		if err := json.Unmarshal(out, &j); err != nil {
			return fmt.Errorf("decode the job: %w", err)
		}
		if live {
			fmt.Fprintf(errOut, "\r\033[K%s job %s: %s, %d%%", j.Type, j.JobID, j.Status, j.Progress)
		}
		if j.final() {
			break
		}
		select {
		case <-ctx.Done():
			if live {
				fmt.Fprintln(errOut)
			}
			return fmt.Errorf("stopped waiting for job %s (still %s; it goes on): %w", j.JobID, j.Status, ctx.Err())
		case <-time.After(jobPollInterval):
		}
	}
	if live {
		fmt.Fprintln(errOut)
	}
	if err := emitRaw(cmd, out); err != nil {
		return err
	}
	if j.Status != "completed" {
		return fmt.Errorf("job %s %s: %s", j.JobID, j.Status, j.FailureReason)
	}
	return nil
}

// isTerminal reports whether w is a character device (a terminal), where
// a line redrawn with \r reads as live progress rather than noise.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
