package cli

import (
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
