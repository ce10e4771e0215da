package config

import (
	"strings"
	"testing"
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
