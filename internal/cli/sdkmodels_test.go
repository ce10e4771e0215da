package cli

import "testing"

// TestPyTimedelta checks the durations against str(isodate.parse_duration(…))
// as Python prints them.
func TestPyTimedelta(t *testing.T) {
	for in, want := range map[string]string{
		"P10675199DT2H48M5.4775807S": "10675199 days, 2:48:05.477581",
		"PT30S":                      "0:00:30",
		"PT1M":                       "0:01:00",
		"P14D":                       "14 days, 0:00:00",
		"PT0.5S":                     "0:00:00.500000",
		"P1DT1S":                     "1 day, 0:00:01",
		"PT25H":                      "1 day, 1:00:00",
		"P1Y":                        "P1Y",
	} {
		if got := pyTimedelta(in); got != want {
			t.Errorf("pyTimedelta(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPyDate(t *testing.T) {
	for in, want := range map[string]string{
		"2026-11-28T21:20:13.763Z":        "2026-11-28T21:20:13.763000+00:00",
		"2026-11-28T21:20:13.6248681234Z": "2026-11-28T21:20:13.624868+00:00",
		"2026-11-28T21:20:13Z":            "2026-11-28T21:20:13+00:00",
		"not a date":                      "not a date",
	} {
		if got := pyDate(in); got != want {
			t.Errorf("pyDate(%q) = %q, want %q", in, got, want)
		}
	}
}
