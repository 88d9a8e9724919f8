package pinbackup_test

import (
	"context"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/pinbackup"
	"github.com/parleychat/parley/internal/toprf"
)

// The figures in docs/PROTOCOL-pin.md come from
//
//	go test -run '^$' -bench . -benchtime 10x ./internal/pinbackup/

// BenchmarkStretch is Argon2id with DefaultParams alone.
func BenchmarkStretch(b *testing.B) {
	version := make([]byte, pinbackup.VersionSize)
	for b.Loop() {
		if _, _, err := pinbackup.Stretch([]byte("1234"), "alice", version, pinbackup.DefaultParams); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRegister is a whole registration at three real realms over
// loopback HTTP, Argon2id (DefaultParams) included.
func BenchmarkRegister(b *testing.B) {
	d := startRealms(b, 3, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	key := pinbackup.NewBackupKey()
	for b.Loop() {
		if err := d.client.Register(ctx, "alice", []byte("1234"), key, pinbackup.DefaultParams, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecover is a whole recovery (status, evaluate, unlock) from
// three real realms, Argon2id (DefaultParams) included.
func BenchmarkRecover(b *testing.B) {
	d := startRealms(b, 3, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	key := pinbackup.NewBackupKey()
	if err := d.client.Register(ctx, "alice", []byte("1234"), key, pinbackup.DefaultParams, 0); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := d.client.Recover(ctx, "alice", []byte("1234")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecoverCryptoOnly is the client's and realms' computation of a
// recovery without Argon2id or the network: blind, two evaluations with
// proofs, two proof checks, combination and finalisation.
func BenchmarkRecoverCryptoOnly(b *testing.B) {
	sk := toprf.GenerateKey()
	shares, _ := sk.Split(2, 3)
	for b.Loop() {
		st, bl, err := toprf.Blind([]byte("access key"))
		if err != nil {
			b.Fatal(err)
		}
		var evals []toprf.ShareEvaluation
		for _, s := range shares[:2] {
			ev, err := s.BlindEvaluate(bl)
			if err != nil {
				b.Fatal(err)
			}
			evals = append(evals, toprf.ShareEvaluation{Index: s.Index(), Public: s.Public(), Evaluation: ev})
		}
		if _, err := st.Finalize(evals); err != nil {
			b.Fatal(err)
		}
	}
}
