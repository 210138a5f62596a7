// Package testutil holds helpers shared by mlog's tests.
package testutil

import (
	"testing"
	"time"
)

// Eventually waits for cond, checking every millisecond, and fails the test
// after 10 s. Tests wait on conditions with a deadline, never on sleeps.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
