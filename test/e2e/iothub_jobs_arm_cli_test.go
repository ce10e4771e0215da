package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/iothub/armiothub"

	"github.com/outpost-iot/outpost/internal/testserver"
)

const readerRole = "acdd72a7-3385-48ef-bd42-f606fba81ae7"

// armJob is JobResponse as the resource provider sends it.
type armJob struct {
	JobID, Type, Status, FailureReason string
	StartTimeUTC                       string `json:"startTimeUtc"`
	EndTimeUTC                         string `json:"endTimeUtc"`
}

// waitARMJob polls GET {hub}/jobs until the job is final.
func waitARMJob(t *testing.T, op armCall, hubID, apiVersion, jobID string) armJob {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, body := op.do("GET", hubID+"/jobs?api-version="+apiVersion, "")
		if code != 200 {
			t.Fatalf("GET jobs: %d %v", code, body)
		}
		raw, _ := json.Marshal(body["value"])
		var list []armJob
		if err := json.Unmarshal(raw, &list); err != nil {
			t.Fatalf("jobs list %s: %v", raw, err)
		}
		for _, j := range list {
			if j.JobID == jobID {
				switch j.Status {
				case "completed", "failed", "cancelled":
					return j
				case "enqueued", "running":
				default:
					t.Fatalf("job status %q is not in the provider's JobStatus enum", j.Status)
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s not final: %v", jobID, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestJobsARM: the IotHubs exportDevices and importDevices actions queue
// bulk jobs with the ARM request bodies, answer JobResponse (RFC 1123
// times), are listed by GET {hub}/jobs, check ARM authorization, and name
// the body's own members in their errors; the Go SDK (armiothub) drives
// an import.
func TestJobsARM(t *testing.T) {
	s := testserver.Start(t)
	const group = "rg-jobs-arm"
	env := newJobsEnv(t, s, group)
	h := createHub(t, s, group)
	for _, id := range []string{"arm-dev-1", "arm-dev-2", "arm-dev-3"} {
		createDevice(t, s, h, id)
	}
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	const v = "?api-version=2023-06-30"

	// Bodies the provider refuses, with its flat error and the body's names.
	for _, c := range []struct{ body, want string }{
		{`{"excludeKeys":false}`, "exportBlobContainerUri is required"},
		{`{"exportBlobContainerUri":"` + env.outSAS + `"}`, "excludeKeys is required"},
		{`{"exportBlobContainerUri":"` + env.out + `","excludeKeys":false}`, "exportBlobContainerUri has no SAS"},
		{`{"exportBlobContainerUri":"` + env.outSAS + `","excludeKeys":false,"authenticationType":"sasBased"}`, "authenticationType 'sasBased'"},
	} {
		code, body := op.do("POST", h.ID+"/exportDevices"+v, c.body)
		msg, _ := body["message"].(string)
		if code != 400 || body["code"] == nil || !strings.Contains(msg, c.want) || strings.Contains(msg, "outputBlobContainerUri") {
			t.Errorf("exportDevices %s: %d %v; want 400 with %q", c.body, code, body, c.want)
		}
	}
	if code, body := op.do("POST", h.ID+"/importDevices"+v, `{"outputBlobContainerUri":"`+env.outSAS+`"}`); code != 400 || !strings.Contains(body["message"].(string), "inputBlobContainerUri") {
		t.Errorf("importDevices without input: %d %v", code, body)
	}

	// A Reader may list jobs but not start one.
	objectID, clientID, secret := newServicePrincipal(t, s, "jobs-reader")
	assignRole(t, s, objectID, readerRole, h.ID)
	reader := armCall{t, s, spToken(t, s, clientID, secret, testserver.ARMResource)}
	if code, body := reader.do("POST", h.ID+"/exportDevices"+v, `{"exportBlobContainerUri":"`+env.outSAS+`","excludeKeys":false}`); code != 403 || errorCode(body) != "AuthorizationFailed" ||
		!strings.Contains(body["error"].(map[string]any)["message"].(string), "Microsoft.Devices/IotHubs/exportDevices/action") {
		t.Errorf("a Reader's exportDevices: %d %v", code, body)
	}
	if code, body := reader.do("POST", h.ID+"/importDevices"+v, `{"inputBlobContainerUri":"`+env.inSAS+`","outputBlobContainerUri":"`+env.outSAS+`"}`); code != 403 ||
		!strings.Contains(body["error"].(map[string]any)["message"].(string), "Microsoft.Devices/IotHubs/importDevices/action") {
		t.Errorf("a Reader's importDevices: %d %v", code, body)
	}
	if code, body := reader.do("GET", h.ID+"/jobs"+v, ""); code != 200 || len(body["value"].([]any)) != 0 {
		t.Errorf("a Reader's GET jobs: %d %v", code, body)
	}

	// Export with a SAS container (key-based), raw REST as armiothub sends it.
	code, body := op.do("POST", h.ID+"/exportDevices"+v, `{"exportBlobContainerUri":"`+env.outSAS+`","excludeKeys":false,"authenticationType":"keyBased"}`)
	if code != 200 {
		t.Fatalf("exportDevices: %d %v", code, body)
	}
	id, _ := body["jobId"].(string)
	if id == "" || body["type"] != "export" || (body["status"] != "enqueued" && body["status"] != "running") {
		t.Fatalf("exportDevices answered %v", body)
	}
	j := waitARMJob(t, op, h.ID, "2023-06-30", id)
	if j.Status != "completed" || j.FailureReason != "" {
		t.Fatalf("export job: %+v", j)
	}
	start, err1 := time.Parse(time.RFC1123, j.StartTimeUTC)
	end, err2 := time.Parse(time.RFC1123, j.EndTimeUTC)
	if err1 != nil || err2 != nil || end.Before(start) || time.Since(start) > time.Hour {
		t.Errorf("job times are not RFC 1123: %+v (%v, %v)", j, err1, err2)
	}
	exported := readExport(t, env.get(t, "output", "devices.txt"))
	if len(exported) != 3 || exported["arm-dev-2"].Primary == "" {
		t.Fatalf("devices.txt: %v", exported)
	}
	// The data plane sees the same job.
	if code, raw := hubCall(t, s, h, "GET", "/jobs/"+id, nil); code != 200 || !bytes.Contains(raw, []byte(`"completed"`)) {
		t.Errorf("service API GET /jobs/%s: %d %s", id, code, raw)
	}

	// Import with the Go SDK; the list is read with an older api-version.
	env.put(t, "input", "devices.txt", []byte(`{"id":"arm-imp-1","importMode":"create"}`+"\n"+`{"id":"arm-imp-2","importMode":"create","status":"disabled"}`+"\n"))
	hubs, err := armiothub.NewResourceClient(s.App.Installation().SubscriptionID, operatorCredential(t, s), armOptions(s))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	resp, err := hubs.ImportDevices(ctx, group, h.Name, armiothub.ImportDevicesRequest{
		InputBlobContainerURI: to.Ptr(env.inSAS), OutputBlobContainerURI: to.Ptr(env.outSAS),
		AuthenticationType: to.Ptr(armiothub.AuthenticationTypeKeyBased),
	}, nil)
	if err != nil {
		t.Fatalf("ImportDevices: %v", err)
	}
	if resp.JobID == nil || resp.Type == nil || *resp.Type != armiothub.JobTypeImport {
		t.Fatalf("ImportDevices answered %+v", resp.JobResponse)
	}
	if j := waitARMJob(t, op, h.ID, "2021-03-31", *resp.JobID); j.Status != "completed" {
		t.Fatalf("import job: %+v", j)
	}
	pager := hubs.NewListJobsPager(group, h.Name, nil)
	var listed []*armiothub.JobResponse
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListJobs: %v", err)
		}
		listed = append(listed, page.Value...)
	}
	if len(listed) != 2 || *listed[0].JobID != id || *listed[1].Status != armiothub.JobStatusCompleted || listed[1].EndTimeUTC == nil || listed[1].EndTimeUTC.IsZero() {
		t.Fatalf("ListJobs: %d jobs, last %+v", len(listed), listed[len(listed)-1])
	}
	// GetJob: one job by id through the resource manager, and a clear 404.
	got, err := hubs.GetJob(ctx, group, h.Name, *resp.JobID, nil)
	if err != nil || got.Status == nil || *got.Status != armiothub.JobStatusCompleted || *got.JobID != *resp.JobID {
		t.Fatalf("GetJob: %+v, %v", got.JobResponse, err)
	}
	var re *azcore.ResponseError
	if _, err := hubs.GetJob(ctx, group, h.Name, "no-such-job", nil); !errors.As(err, &re) || re.StatusCode != 404 || re.ErrorCode != "JobNotFound" {
		t.Fatalf("GetJob of an unknown job: %v", err)
	}
	for _, dev := range []string{"arm-imp-1", "arm-imp-2"} {
		if code, raw := hubCall(t, s, h, "GET", "/devices/"+dev, nil); code != 200 {
			t.Errorf("imported %s: %d %s", dev, code, raw)
		}
	}
}

// TestJobsCLI: `outpost iot hub job create --wait` runs an export to its
// end and prints the job; list, show and cancel answer; a job that fails
// is printed and exits non-zero; a request the hub refuses says why.
func TestJobsCLI(t *testing.T) {
	bin := testserver.BuildBinary(t)
	s := testserver.Start(t)
	const group = "rg-jobs-cli"
	env := newJobsEnv(t, s, group)
	h := createHub(t, s, group)
	for _, id := range []string{"cli-dev-1", "cli-dev-2"} {
		createDevice(t, s, h, id)
	}
	run := func(args ...string) (stdout, stderr string, err error) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"iot", "hub", "job"}, args...)...)
		cmd.Env = os.Environ()
		for k, v := range s.Env() {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		return o.String(), e.String(), err
	}
	decode := func(out string, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
	}

	out, errOut, err := run("create", "--hub-name", h.Name, "--job-type", "export", "--output-container-uri", env.outSAS,
		"--output-blob-name", "cli-export.txt", "--exclude-keys", "--wait")
	if err != nil {
		t.Fatalf("job create --wait: %v\n%s%s", err, out, errOut)
	}
	var job jobView
	decode(out, &job)
	if job.Status != "completed" || job.Type != "export" || job.Progress != 100 || job.StorageAuthenticationType != "keyBased" {
		t.Fatalf("job create --wait printed %s", out)
	}
	if errOut != "" {
		t.Errorf("no terminal, yet stderr has %q", errOut)
	}
	raw := env.get(t, "output", "cli-export.txt")
	if exported := readExport(t, raw); len(exported) != 2 || exported["cli-dev-1"].Primary != "" {
		t.Fatalf("cli-export.txt (keys excluded): %s", raw)
	}

	out, errOut, err = run("list", "-n", h.Name)
	var list []jobView
	if err != nil {
		t.Fatalf("job list: %v %s", err, errOut)
	}
	decode(out, &list)
	if len(list) != 1 || list[0].JobID != job.JobID {
		t.Fatalf("job list printed %s", out)
	}
	out, _, err = run("show", "-n", h.Name, "--job-id", job.JobID)
	var shown jobView
	if err != nil {
		t.Fatalf("job show: %v", err)
	}
	if decode(out, &shown); shown.Status != "completed" || shown.JobID != job.JobID {
		t.Fatalf("job show printed %s", out)
	}
	out, _, err = run("cancel", "-n", h.Name, "--job-id", job.JobID)
	var cancelled jobView
	if err != nil {
		t.Fatalf("job cancel: %v", err)
	}
	if decode(out, &cancelled); cancelled.Status != "completed" {
		t.Fatalf("cancelling a completed job printed %s", out)
	}

	// An import with no devices.txt in the input container fails: the job
	// is printed and the command exits non-zero.
	out, errOut, err = run("create", "-n", h.Name, "--job-type", "import", "--input-container-uri", env.inSAS,
		"--output-container-uri", env.outSAS, "--input-blob-name", "missing.txt", "--wait")
	var failed jobView
	if err == nil {
		t.Fatalf("a failed job exited 0: %s", out)
	}
	if decode(out, &failed); failed.Status != "failed" || failed.FailureReason == "" || !strings.Contains(errOut, failed.JobID) {
		t.Fatalf("failed import printed %s / %s", out, errOut)
	}

	// Refused before a job exists: no SAS on a key-based URI; unknown ids.
	if _, errOut, err := run("create", "-n", h.Name, "--job-type", "export", "--output-container-uri", env.out); err == nil || !strings.Contains(errOut, "has no SAS") {
		t.Errorf("export without a SAS: %v %s", err, errOut)
	}
	if _, errOut, err := run("show", "-n", h.Name, "--job-id", "no-such-job"); err == nil || !strings.Contains(errOut, "JobNotFound") {
		t.Errorf("show of an unknown job: %v %s", err, errOut)
	}
	if _, errOut, err := run("list", "-n", "no-such-hub"); err == nil || !strings.Contains(errOut, "ResourceNotFound") {
		t.Errorf("list of an unknown hub: %v %s", err, errOut)
	}
}
