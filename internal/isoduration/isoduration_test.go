package isoduration

import (
	"math"
	"testing"
	"time"
)

func TestParseAndFormat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"PT1H", time.Hour}, {"pt5s", 5 * time.Second}, {"P1DT2H", 26 * time.Hour}, {"P2W", 14 * 24 * time.Hour},
		{"PT0.5S", 500 * time.Millisecond}, {"PT1H30M5.5S", time.Hour + 30*time.Minute + 5500*time.Millisecond},
		// .NET's TimeSpan.MaxValue (Service Bus defaults) and beyond saturate.
		{"P10675199DT2H48M5.4775807S", time.Duration(math.MaxInt64)}, {"P99999999D", time.Duration(math.MaxInt64)},
	} {
		got, err := Parse(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "P", "PT", "1H", "PT1", "PTH", "P1H", "PT1D", "PTT1H", "PT1H1H1X", "01:00:00"} {
		if d, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", bad, d)
		}
	}
	for d, want := range map[time.Duration]string{time.Hour: "PT1H", 14 * 24 * time.Hour: "P14D", 90 * time.Second: "PT1M30S", 0: "PT0S"} {
		if got := Format(d); got != want {
			t.Errorf("Format(%v) = %q, want %q", d, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"PT1H", "P1DT2H3M4.5S", "P2W", "PT", "P10675199DT2H48M5.4775807S"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := Parse(s); err == nil && d < 0 {
			t.Fatalf("Parse(%q) = %v, negative", s, d)
		}
	})
}
