package query

import (
	"testing"
)

// Benchmarks report evals/s for one goroutine, i.e. per core; the
// Parallel variants show how that scales across GOMAXPROCS.

func benchmarkEval(b *testing.B, cond string, resetPerEval bool) {
	c := mustCompile(b, cond)
	msg := telemetry()
	in := NewInput(msg)
	if got := c.Eval(in); got != True {
		b.Fatalf("%q = %s, want true", cond, got)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if resetPerEval {
			in.Reset(msg)
		}
		c.Eval(in)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
}

// The README example: as_number because property values are strings
// (temperature > 30 does not compile, as in IoT Hub).
func BenchmarkEvalProperties(b *testing.B) {
	benchmarkEval(b, "as_number(temperature) > 30 AND level = 'critical'", false)
}

func BenchmarkEvalPropertyEquals(b *testing.B) {
	benchmarkEval(b, "level = 'critical'", false)
}

func BenchmarkEvalSystemAndStringFunctions(b *testing.B) {
	benchmarkEval(b, "$connectionDeviceId = 'thermostat-7' AND starts_with(lower(site), 'ber')", false)
}

// BenchmarkEvalBody parses the body on every evaluation: one message, one
// route.
func BenchmarkEvalBody(b *testing.B) {
	benchmarkEval(b, "$body.Weather.Temperature > 50", true)
}

// BenchmarkEvalBodyParsed is every further route on the same message: the
// body is already parsed.
func BenchmarkEvalBodyParsed(b *testing.B) {
	benchmarkEval(b, "$body.Weather.Temperature > 50", false)
}

func BenchmarkEvalTwin(b *testing.B) {
	benchmarkEval(b, "$twin.tags.region = 'eu'", true)
}

// BenchmarkRouteTable is one message against ten routes, the body parsed
// once; evals/s counts messages.
func BenchmarkRouteTable(b *testing.B) {
	var conds []*Condition
	for _, src := range []string{
		"level = 'critical'", "level = 'warning'", "as_number(temperature) > 30", "site = 'Paris'",
		"$body.Weather.Temperature > 50", "$body.Weather.Humidity > 90", "$body.readings[0] = 1",
		"$connectionDeviceId = 'other'", "$twin.tags.region = 'eu'", "true",
	} {
		conds = append(conds, mustCompile(b, src))
	}
	msg := telemetry()
	in := &Input{}
	b.ReportAllocs()
	for b.Loop() {
		in.Reset(msg)
		for _, c := range conds {
			c.Eval(in)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkEvalPropertiesParallel(b *testing.B) {
	c := mustCompile(b, "as_number(temperature) > 30 AND level = 'critical'")
	msg := telemetry()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		in := NewInput(msg)
		for pb.Next() {
			c.Eval(in)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile("as_number(temperature) > 30 AND level = 'critical' OR $body.Weather.Temperature > 50"); err != nil {
			b.Fatal(err)
		}
	}
}
