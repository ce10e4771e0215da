package cli

import (
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/spf13/pflag"

	"github.com/outpost-iot/outpost/internal/config"
)

func TestServeFlagsReplaySlices(t *testing.T) {
	var cfg config.Config
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	bindServeFlags(fs, &cfg)
	if err := fs.Parse([]string{"--egress-allow", "127.0.0.1:10000", "--egress-allow", "azurite.test", "--blob-listen", "off"}); err != nil {
		t.Fatal(err)
	}
	got, err := loadServeConfig(fs, &cfg, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Egress.Allow, []string{"127.0.0.1:10000", "azurite.test"}) || got.BlobAddress() != "" {
		t.Fatalf("egress allow %q, blob address %q", got.Egress.Allow, got.BlobAddress())
	}
}

func TestDeploymentParameters(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/p.json"
	if err := os.WriteFile(file, []byte(`{"parameters": {"fromFile": {"value": 3}}} // a comment`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := deploymentParameters([]string{"a=b n=5", "obj={\"k\":true}", "@" + file})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"a": map[string]any{"value": "b"}, "n": map[string]any{"value": int64(5)},
		"obj": map[string]any{"value": map[string]any{"k": true}}, "fromFile": map[string]any{"value": int64(3)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parameters = %v, want %v", got, want)
	}
	if _, err := deploymentParameters([]string{"novalue"}); err == nil {
		t.Fatal("a parameter without = accepted")
	}
}
