package throttle

import (
	"errors"
	"testing"
)

func TestLimiter(t *testing.T) {
	if err := New(0).Allow("h"); err != nil {
		t.Fatalf("off: %v", err)
	}
	l := New(5)
	allowed := 0
	for i := 0; i < 20; i++ {
		if err := l.Allow("Hub"); err == nil {
			allowed++
		} else if !errors.Is(err, ErrThrottled) {
			t.Fatal(err)
		}
	}
	if allowed < 5 || allowed > 6 {
		t.Errorf("allowed %d of 20 at 5/s with a burst of 5", allowed)
	}
	if err := l.Allow("other"); err != nil {
		t.Errorf("hubs share a bucket: %v", err)
	}
}
