package main

import (
	"context"
	"testing"

	"github.com/pgbb/pgbb/harness/campaign"
	"github.com/pgbb/pgbb/harness/osuser"
)

// TestOtherUserOnlyWithReader: the agent makes no other user for a job
// without a reader, nor for an owner it cannot switch from (the agent not
// root); it runs the reader as the owner then.
func TestOtherUserOnlyWithReader(t *testing.T) {
	owner := osuser.Account{Name: "pgbuild", UID: 1000, GID: 1000, Switch: true}
	if u, err := otherUser(context.Background(), campaign.Job{}, owner); u != nil || err != nil {
		t.Fatalf("a job without a reader: %+v, %v", u, err)
	}
	owner.Switch = false
	if u, err := otherUser(context.Background(), campaign.Job{ReaderBin: "/tmp/pgbb-status"}, owner); u != nil || err != nil {
		t.Fatalf("an owner not switched to: %+v, %v", u, err)
	}
}
