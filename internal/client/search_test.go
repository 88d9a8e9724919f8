package client

import "testing"

// TestSearch: search finds text in this device's conversations, without
// regard to case, in one conversation or all, newest first; LIKE's
// wildcards are plain characters; deleted messages are not found.
func TestSearch(t *testing.T) {
	ctx := testCtx(t)
	srv := newServer(t)
	alice, bob := aliceAndBob(t, srv.URL)
	carol := register(t, srv.URL, "carol")
	if err := alice.AddContact(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	send(t, bob, "alice", "the Budget for March")
	send(t, carol, "alice", "budget: 100% agreed")
	gone := send(t, alice, "bob", "budget typo")
	if err := alice.DeleteForEveryone(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	send(t, alice, "bob", "nothing here")
	syncAll(t, alice)

	texts := func(ms []Message, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range ms {
			out = append(out, m.From+": "+m.Text)
		}
		return out
	}
	wantStrings(t, "budget everywhere", texts(alice.Search(ctx, "BUDGET", "")), "carol: budget: 100% agreed", "bob: the Budget for March")
	wantStrings(t, "budget with bob", texts(alice.Search(ctx, "budget", "bob")), "bob: the Budget for March")
	wantStrings(t, "a literal %", texts(alice.Search(ctx, "100%", "")), "carol: budget: 100% agreed")
	wantStrings(t, "% is no wildcard", texts(alice.Search(ctx, "b%t", "")))
	wantStrings(t, "_ is no wildcard", texts(alice.Search(ctx, "budg_t", "")))
	if _, err := alice.Search(ctx, "", ""); err == nil {
		t.Fatal("an empty search: no error")
	}
}
