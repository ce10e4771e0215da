package portal

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/sas"
)

// hubAccess is how the device and job pages reach a hub's service API: as
// the Azure portal does by default, with the hub's iothubowner policy, whose
// key the signed-in principal must be allowed to read (listkeys, an ARM
// action RBAC decides — a Reader is refused there, with ARM's message).
type hubAccess struct {
	host  string // {hub}.{suffix}
	token string // SharedAccessSignature for iothubowner
}

func (h *Handler) hubAccess(ctx context.Context, s *session, ref *resourceRef) (hubAccess, error) {
	resp, err := h.arm(ctx, s, http.MethodPost, ref.ID+"/listkeys", hubAPI, nil)
	if err != nil {
		return hubAccess{}, err
	}
	var keys struct {
		Value []struct {
			KeyName    string `json:"keyName"`
			PrimaryKey string `json:"primaryKey"`
			Rights     string `json:"rights"`
		} `json:"value"`
	}
	if err := resp.decode(&keys); err != nil {
		return hubAccess{}, err
	}
	host := ref.Name + "." + h.dnsSuffix
	for _, k := range keys.Value {
		if strings.Contains(k.Rights, "RegistryWrite") && strings.Contains(k.Rights, "ServiceConnect") {
			tok, err := sas.Sign(host, k.PrimaryKey, k.KeyName, h.now().Add(time.Hour))
			if err != nil {
				return hubAccess{}, err
			}
			return hubAccess{host: host, token: tok}, nil
		}
	}
	return hubAccess{}, &APIError{Status: http.StatusForbidden, Code: "NoRegistryPolicy",
		Message: "The hub has no shared access policy with RegistryWrite and ServiceConnect rights (iothubowner), which the device pages use."}
}

// hubData is a request to a hub's service API.
func (h *Handler) hubData(ctx context.Context, s *session, a hubAccess, method, path string, query url.Values, body any) (*apiResponse, error) {
	return h.hubDataWith(ctx, s, a, method, path, query, body, nil)
}

func (h *Handler) hubDataWith(ctx context.Context, s *session, a hubAccess, method, path string, query url.Values, body any, header http.Header) (*apiResponse, error) {
	if query == nil {
		query = url.Values{}
	}
	query.Set("api-version", hubDataAPI)
	return h.do(ctx, call{method: method, host: a.host, path: path, query: query, auth: a.token, body: body, header: header, remote: s.remote})
}

type deviceView struct {
	ID, Status, AuthType, ConnectionState, LastActivity string
}

type devicesData struct {
	Devices          []deviceView
	Total            int
	Next             string // continuation of the registry query
	Find             string
	Device           *deviceView
	ConnectionString string
	NewID            string
}

// devicesPerPage is one page of the device list; the rest follows through
// the registry query's continuation, as the Azure portal pages it.
const devicesPerPage = 100

// devices is Hub → Devices: the list, Add device (symmetric keys generated
// by the hub) and a device's details with its connection string.
func (h *Handler) devices(w http.ResponseWriter, r *http.Request, s *session) error {
	ref, err := h.refFromQuery(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	a, err := h.hubAccess(ctx, s, ref)
	if err != nil {
		return err
	}
	d := devicesData{}
	var actionErr *APIError
	if r.Method == http.MethodPost {
		id := strings.TrimSpace(r.PostFormValue("deviceId"))
		d.NewID = id
		body := map[string]any{"deviceId": id, "status": "enabled", "authentication": map[string]any{"type": "sas", "symmetricKey": map[string]any{}}}
		if _, err := h.hubData(ctx, s, a, http.MethodPut, "/devices/"+url.PathEscape(id), nil, body); err != nil {
			actionErr = asAPIError(err)
		} else {
			h.done(w, r, s, "Created device "+id+".", Prefix+"devices?id="+urlQuery(ref.ID)+"&device="+urlQuery(id))
			return nil
		}
	}
	if dev := strings.TrimSpace(r.URL.Query().Get("device")); dev != "" && actionErr == nil {
		resp, err := h.hubData(ctx, s, a, http.MethodGet, "/devices/"+url.PathEscape(dev), nil, nil)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := resp.decode(&m); err != nil {
			return err
		}
		v := deviceFrom(m)
		d.Device = &v
		if key := str(obj(obj(m, "authentication"), "symmetricKey"), "primaryKey"); key != "" {
			d.ConnectionString = "HostName=" + a.host + ";DeviceId=" + v.ID + ";SharedAccessKey=" + key
		}
		h.render(w, http.StatusOK, "device", &page{Title: "Device " + v.ID, Session: s, Resource: ref, Blade: "devices", Data: d})
		return nil
	}
	hdr := http.Header{"X-Ms-Max-Item-Count": {strconv.Itoa(devicesPerPage)}}
	if c := r.URL.Query().Get("page"); c != "" {
		hdr.Set("X-Ms-Continuation", c)
	}
	resp, err := h.hubDataWith(ctx, s, a, http.MethodPost, "/devices/query", nil, map[string]string{"query": "SELECT * FROM devices"}, hdr)
	if err != nil {
		return err
	}
	var list []map[string]any
	if err := resp.decode(&list); err != nil {
		return err
	}
	for _, m := range list {
		d.Devices = append(d.Devices, deviceView{ID: str(m, "deviceId"), Status: str(m, "status"),
			AuthType: str(m, "authenticationType"), ConnectionState: str(m, "connectionState"), LastActivity: str(m, "lastActivityTime")})
	}
	d.Next = resp.header.Get("X-Ms-Continuation")
	if st, err := h.hubData(ctx, s, a, http.MethodGet, "/statistics/devices", nil, nil); err == nil {
		var stats struct {
			Total int `json:"totalDeviceCount"`
		}
		if st.decode(&stats) == nil {
			d.Total = stats.Total
		}
	}
	status := http.StatusOK
	if actionErr != nil {
		status = actionErr.Status
	}
	h.render(w, status, "devices", &page{Title: "Devices — " + ref.Name, Session: s, Resource: ref, Blade: "devices", Error: actionErr, Data: d})
	return nil
}

func deviceFrom(m map[string]any) deviceView {
	return deviceView{ID: str(m, "deviceId"), Status: str(m, "status"), AuthType: str(obj(m, "authentication"), "type"),
		ConnectionState: str(m, "connectionState"), LastActivity: str(m, "lastActivityTime")}
}
