package config

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.Listen = "nope"
	c.DNSSuffix = "Bad_Suffix"
	c.Log.Format = "xml"
	c.Store.Driver = "postgres"
	c.Store.DSN = "host=x"
	c.NATS.URL = "127.0.0.1:4222"
	c.TenantID = "not-a-guid"
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted a broken config")
	}
	for _, want := range []string{"listen:", "dns-suffix:", "log-format:", "store-dsn:", "nats-url:", "tenant-id:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestValidateReplicasAndRoutingRetry(t *testing.T) {
	c := Default()
	c.NATS.Replicas = 3 // embedded: one server
	c.Hub.RoutingRetryBase = 2 * time.Second
	c.Hub.RoutingRetryMax = time.Second
	err := c.Validate()
	for _, want := range []string{"nats-replicas: 3 needs an external NATS cluster", "routing-retry-max: 1s must be between routing-retry-base"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want it to mention %q", err, want)
		}
	}
	c.NATS.URL = "nats://a:4222,nats://b:4222,nats://c:4222"
	c.Hub.RoutingRetryBase, c.Hub.RoutingRetryMax = 50*time.Millisecond, 200*time.Millisecond
	if err := c.Validate(); err != nil {
		t.Errorf("Validate of 3 replicas on a cluster and short retries: %v", err)
	}
}
