package serviceapi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/hub/serviceapi"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
)

const benchKey = "cG9saWN5a2V5cG9saWN5a2V5cG9saWN5a2V5MTIzNA=="

// BenchmarkRegistryCreate measures device creates through the service REST
// API (SAS authentication, validation, key generation, the SQLite store)
// over HTTP without TLS, with parallel clients; it reports devices/s.
// Never asserted: `go test -run x -bench RegistryCreate ./internal/hub/serviceapi/`.
func BenchmarkRegistryCreate(b *testing.B) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: b.TempDir() + "/db"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	id := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/benchhub"
	body := `{"properties":{"hostName":"benchhub.outpost.localhost","authorizationPolicies":[{"keyName":"iothubowner","primaryKey":"` + benchKey + `","secondaryKey":"` + benchKey + `","rights":"RegistryWrite, ServiceConnect, DeviceConnect"}]}}`
	if _, _, err := st.Resources().Put(ctx, id, func(*store.Resource) (store.Resource, error) {
		return store.Resource{ID: id, Type: "Microsoft.Devices/IotHubs", Name: "benchhub", Body: []byte(body)}, nil
	}); err != nil {
		b.Fatal(err)
	}
	reg := registry.New(st.Devices(), nil, time.Now)
	h := serviceapi.New(serviceapi.Config{Hubs: hub.NewDirectory(st.Resources(), "outpost.localhost", ""), Registry: reg,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := httptest.NewServer(h)
	defer srv.Close()
	token, _ := sas.Sign("benchhub.outpost.localhost", benchKey, "iothubowner", time.Now().Add(time.Hour))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			req, _ := http.NewRequest("PUT", srv.URL+fmt.Sprintf("/devices/bench-%d?api-version=2021-04-12", i), strings.NewReader(`{"deviceId":"`+fmt.Sprintf("bench-%d", i)+`"}`))
			req.Host = "benchhub.outpost.localhost"
			req.Header.Set("Authorization", token)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body) //nolint:errcheck
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("create: %s", resp.Status)
			}
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "devices/s")
}
