//go:build race

package outposttest_test

// raceEnabled reports whether this test binary was built with -race; the
// fresh module's tests are built the same way, so they reuse the build
// cache of the packages this run compiled.
const raceEnabled = true
