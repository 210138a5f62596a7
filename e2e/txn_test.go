package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/internal/testutil"
)

// Transactions on a real `mlog server` process: a franz-go transactional
// producer commits one transaction, aborts one and leaves one open; kcat
// (librdkafka) with -X isolation.level=read_committed reads only the
// committed records, and without it reads them all; `mlog txn list`,
// `describe` and `producers` show the open transaction.
func TestTransactionsWithKcatAndTxnCommands(t *testing.T) {
	kc := kcat(t)
	s := startServer(t, nil, "--data-dir", t.TempDir())
	mlog := bin(t, "mlog")
	run(t, "", mlog, "topic", "create", "--addrs", s.addr, "--topic", "payments")
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.addr), kgo.TransactionalID("billing"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	txn := func(value string, end *kgo.TransactionEndTry) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "payments", Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if end != nil {
			if err := cl.EndTransaction(ctx, *end); err != nil {
				t.Fatal(err)
			}
		}
	}
	commit, abort := kgo.TryCommit, kgo.TryAbort
	txn("committed", &commit)
	txn("aborted", &abort)
	txn("open", nil)

	read := func(extra ...string) string {
		args := append([]string{"-b", s.addr, "-C", "-t", "payments", "-o", "beginning", "-e", "-f", "%s\n"}, extra...)
		return run(t, "", kc, args...)
	}
	if got := read("-X", "isolation.level=read_committed"); got != "committed\n" {
		t.Fatalf("kcat read_committed read %q, want only the committed record", got)
	}
	if got := read("-X", "isolation.level=read_uncommitted"); got != "committed\naborted\nopen\n" {
		t.Fatalf("kcat read_uncommitted read %q, want all three", got)
	}

	if out := run(t, "", mlog, "txn", "list", "--addrs", s.addr); !strings.Contains(out, "transactional_id=billing") || !strings.Contains(out, "state=Ongoing") {
		t.Fatalf("txn list:\n%s", out)
	}
	if out := run(t, "", mlog, "txn", "describe", "billing", "--addrs", s.addr); !strings.Contains(out, "state=Ongoing") || !strings.Contains(out, "partitions=payments-0") {
		t.Fatalf("txn describe:\n%s", out)
	}
	// The open transaction started at offset 4 (committed 0, marker 1,
	// aborted 2, marker 3).
	if out := run(t, "", mlog, "txn", "producers", "--topic", "payments", "--addrs", s.addr); !strings.Contains(out, "txn_start_offset=4") {
		t.Fatalf("txn producers:\n%s", out)
	}

	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the last transaction read committed", func() bool {
		return read("-X", "isolation.level=read_committed") == "committed\nopen\n"
	})
}
