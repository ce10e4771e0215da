package portal

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

type jobView struct {
	ID, Type, Status, Auth, Identity, FailureReason, Start, End string
	Progress                                                    int
	Running                                                     bool
}

type jobsData struct {
	Jobs       []jobView
	Accounts   []targetOption
	Identities []userIdentity
	Running    bool
}

// jobs is Hub → Import/Export jobs: start an identity-based import or
// export into a container picked from the subscription, and the hub's jobs
// with their progress and failure reasons (the page refreshes its table
// while a job runs).
func (h *Handler) jobs(w http.ResponseWriter, r *http.Request, s *session) error {
	ref, err := h.refFromQuery(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	a, err := h.hubAccess(ctx, s, ref)
	if err != nil {
		return err
	}
	var actionErr *APIError
	if r.Method == http.MethodPost {
		f := r.PostForm
		body, err := h.jobRequest(ctx, s, f)
		if err == nil {
			_, err = h.hubData(ctx, s, a, http.MethodPost, "/jobs/create", nil, body)
		}
		if err == nil {
			h.done(w, r, s, "Started the "+f.Get("type")+" job.", Prefix+"jobs?id="+urlQuery(ref.ID))
			return nil
		}
		actionErr = asAPIError(err)
	}
	resp, err := h.hubData(ctx, s, a, http.MethodGet, "/jobs", nil, nil)
	if err != nil {
		return err
	}
	var list []map[string]any
	if err := resp.decode(&list); err != nil {
		return err
	}
	d := jobsData{}
	for _, m := range list {
		j := jobView{ID: str(m, "jobId"), Type: str(m, "type"), Status: str(m, "status"), Progress: intOf(m["progress"], 0),
			FailureReason: str(m, "failureReason"), Start: str(m, "startTimeUtc"), End: str(m, "endTimeUtc"),
			Auth: str(m, "storageAuthenticationType"), Identity: str(obj(m, "identity"), "userAssignedIdentity")}
		switch j.Status {
		case "completed", "failed", "cancelled":
		default:
			j.Running, d.Running = true, true
		}
		d.Jobs = append(d.Jobs, j)
	}
	sort.Slice(d.Jobs, func(i, j int) bool { return d.Jobs[i].Start > d.Jobs[j].Start })
	if targets, err := h.targets(ctx, s); err == nil {
		for _, t := range targets {
			if t.Kind == "storageContainers" {
				d.Accounts = append(d.Accounts, t)
			}
		}
	}
	doc, _, err := h.getResource(ctx, s, ref)
	if err != nil {
		return err
	}
	for id := range obj(obj(doc, "identity"), "userAssignedIdentities") {
		d.Identities = append(d.Identities, userIdentity{ID: id, Name: id[strings.LastIndex(id, "/")+1:]})
	}
	status := http.StatusOK
	if actionErr != nil {
		status = actionErr.Status
	}
	h.render(w, status, "jobs", &page{Title: "Import/Export jobs — " + ref.Name, Session: s, Resource: ref, Blade: "jobs", Error: actionErr, Data: d})
	return nil
}

// containerURL is the URL of account/container among the offered accounts.
func containerURL(accounts []targetOption, pick string) (string, bool) {
	acct, container, ok := strings.Cut(pick, "/")
	if !ok {
		return "", false
	}
	for _, a := range accounts {
		if a.Name == acct && a.Host != "" {
			for _, c := range a.Instances {
				if c == container {
					return a.Host + "/" + container, true
				}
			}
		}
	}
	return "", false
}

// jobRequest builds the seed's job body: storageAuthenticationType
// identityBased, the containers, and identity.userAssignedIdentity when a
// user-assigned identity is chosen (none: the system-assigned one).
func (h *Handler) jobRequest(ctx context.Context, s *session, f url.Values) (map[string]any, error) {
	targets, err := h.targets(ctx, s)
	if err != nil {
		return nil, err
	}
	typ := f.Get("type")
	if typ != "export" && typ != "import" {
		return nil, &APIError{Status: http.StatusBadRequest, Code: "InvalidJobType", Message: "Choose Export or Import."}
	}
	body := map[string]any{"type": typ, "storageAuthenticationType": "identityBased", "excludeKeysInExport": f.Get("excludeKeys") != ""}
	out, ok := containerURL(targets, f.Get("output"))
	if !ok {
		return nil, &APIError{Status: http.StatusBadRequest, Code: "NoOutputContainer", Message: "Select the output container."}
	}
	body["outputBlobContainerUri"] = out
	if typ == "import" {
		in, ok := containerURL(targets, f.Get("input"))
		if !ok {
			return nil, &APIError{Status: http.StatusBadRequest, Code: "NoInputContainer", Message: "An import needs the input container that holds devices.txt."}
		}
		body["inputBlobContainerUri"] = in
	}
	if ua := f.Get("identity"); ua != "" {
		body["identity"] = map[string]any{"userAssignedIdentity": ua}
	}
	return body, nil
}
