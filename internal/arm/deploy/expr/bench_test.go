package expr

import "testing"

// The seed templates' typical expressions.
const (
	benchConcat     = "[concat(parameters('iotHubName'), '-', uniqueString(resourceGroup().id))]"
	benchResourceID = "[resourceID('Microsoft.ManagedIdentity/userAssignedIdentities/', variables('identityName'))]"
)

func benchContext() *Context {
	return &Context{
		Subscription:  &Subscription{ID: "87d64d6d-6d17-4ad7-b507-16d9bc498781"},
		ResourceGroup: &ResourceGroup{Name: "testRg", Location: "westus"},
		Parameters:    StaticValues{"iotHubName": "myhub"},
		Variables:     NewVariables(map[string]any{"identityName": "[concat(parameters('iotHubName'), '-identity')]"}),
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(benchConcat); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEval(b *testing.B) {
	e := MustParse(benchConcat)
	ctx := benchContext()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Eval(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEval(b *testing.B) {
	ctx := benchContext()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EvalString(benchResourceID, ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEvalStringLiteral(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EvalString("Microsoft.Devices/IotHubs", nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUniqueString(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		UniqueString("/subscriptions/87d64d6d-6d17-4ad7-b507-16d9bc498781/resourceGroups/testRg")
	}
}

func BenchmarkLessStrings(b *testing.B) {
	e := MustParse("[less('Alpha', 'alpha')]")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Eval(nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvalSimple is a simple expression, pre-parsed: a parameter
// reference (the most common expression in templates); reports evals/s.
func BenchmarkEvalSimple(b *testing.B) {
	e := MustParse("[parameters('iotHubName')]")
	ctx := benchContext()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if _, err := e.Eval(ctx); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "evals/s")
}
