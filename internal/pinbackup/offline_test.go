package pinbackup_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/cloudflare/circl/group"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/parleychat/parley/internal/pinbackup"
	"github.com/parleychat/parley/internal/realm"
	"github.com/parleychat/parley/internal/toprf"
)

// columns classifies every column a realm stores per account. The test
// fails on a column missing here, so a new stored value must be argued
// about before it ships.
var columns = map[string]string{
	"handle":            "public: the account's handle",
	"version":           "public: random registration id; the Argon2id salt input",
	"params":            "public: Argon2id parameters",
	"threshold":         "public: t",
	"allowed_guesses":   "public: guess limit",
	"attempted_guesses": "public: guess counter",
	"updated_ms":        "public: time of the last change",
	"key_share":         "k_i: one Shamir share of the OPRF key; alone, uniformly random and independent of k",
	"registration_key":  "one-time Ed25519 public key, chosen at random",
	"public_share_sig":  "signature over K_i = k_i·G, which k_i alone determines",
	"unlock_tag":        "HMAC under the unlock key = KDF(OPRF_k(access key)): needs the whole key k",
	"secret_share":      "s_i: one Shamir share of the encryption scalar; alone, uniformly random",
	"sealed_secret":     "the backup key sealed under HMAC(Argon2id seed, s): needs the whole scalar s",
	"secret_commitment": "HMAC under the unlock key: needs the whole key k",
}

// heldRealm is what an attacker takes from one realm's database file.
type heldRealm struct {
	id         pinbackup.RealmID
	index      int
	k, s       group.Scalar
	tag        []byte
	commitment []byte
	share      []byte
	sealed     []byte
}

// attack tries every 4-digit PIN against the held realms' data with every
// check the data allows, and returns the PINs that pass any check.
//
// For each PIN it runs Argon2id with the stored salt and parameters, then
// combines the held key shares (and scalar shares) with the Lagrange
// coefficients of every threshold-sized set of realm indices that
// contains them, treating shares it does not hold as zero; with a full
// threshold of shares this is exactly the real key. Each combined key gives
// an OPRF output, an unlock key, unlock tags and secret commitments to
// compare with the stored ones, and each combined scalar an encryption key
// to try on the sealed secret.
func attack(t *testing.T, handle string, version []byte, params pinbackup.Params, threshold, n int, held []heldRealm) []string {
	t.Helper()
	g := group.Ristretto255
	var heldIdx []int
	for _, h := range held {
		heldIdx = append(heldIdx, h.index)
	}
	// Candidate coefficient vectors, one per threshold set containing the held indices.
	var coeffs [][]group.Scalar
	for _, set := range thresholdSets(n, threshold) {
		if !containsAll(set, heldIdx) {
			continue
		}
		lambda, err := toprf.LagrangeAtZero(set)
		if err != nil {
			t.Fatal(err)
		}
		var c []group.Scalar
		for _, h := range held {
			c = append(c, lambda[slices.Index(set, h.index)])
		}
		coeffs = append(coeffs, c)
	}
	one := make([]group.Scalar, len(held))
	for i := range one {
		one[i] = g.NewScalar().SetUint64(1)
	}
	coeffs = append(coeffs, one) // and the shares taken as they are
	t.Logf("attacking with %d realm(s) (indices %v): %d combinations per PIN", len(held), heldIdx, len(coeffs))

	// The combined keys and scalars do not depend on the PIN.
	var keys []*toprf.PrivateKey
	var scalars []group.Scalar
	for _, c := range coeffs {
		k, s := g.NewScalar(), g.NewScalar()
		for i, h := range held {
			k.Add(k, g.NewScalar().Mul(c[i], h.k))
			s.Add(s, g.NewScalar().Mul(c[i], h.s))
		}
		kb, _ := k.MarshalBinary()
		pk, err := toprf.ParsePrivateKey(kb)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, pk)
		scalars = append(scalars, s)
	}

	var matches []string
	nonce := make([]byte, chacha20poly1305.NonceSize)
	for p := range 10000 {
		pin := fmt.Sprintf("%04d", p)
		access, seed, err := pinbackup.Stretch([]byte(pin), handle, version, params)
		if err != nil {
			t.Fatal(err)
		}
		hit := false
		for ci := range coeffs {
			out, err := keys[ci].Evaluate(access)
			if err != nil {
				t.Fatal(err)
			}
			unlock := pinbackup.UnlockKeyOf(out, handle, version)
			for _, h := range held {
				if bytes.Equal(pinbackup.UnlockTagOf(unlock, h.id), h.tag) ||
					bytes.Equal(pinbackup.SecretCommitmentOf(unlock, h.id, h.share, h.sealed), h.commitment) {
					hit = true
				}
			}
			aead, _ := chacha20poly1305.New(pinbackup.EncryptionKeyOf(seed, scalars[ci]))
			if _, err := aead.Open(nil, nonce, held[0].sealed, pinbackup.SecretADOf(handle, version)); err == nil {
				hit = true
			}
		}
		if hit {
			matches = append(matches, pin)
		}
	}
	return matches
}

func thresholdSets(n, t int) [][]int {
	var out [][]int
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		if len(cur) == t {
			out = append(out, slices.Clone(cur))
			return
		}
		for i := start; i <= n; i++ {
			rec(i+1, append(cur, i))
		}
	}
	rec(1, nil)
	return out
}

func containsAll(set, sub []int) bool {
	for _, x := range sub {
		if !slices.Contains(set, x) {
			return false
		}
	}
	return true
}

// TestOneRealmCannotTestPINs is the offline-guessing test: with the whole
// database of t-1 = 1 realm (of 3, threshold 2), no 4-digit PIN can be
// told apart from the others; with the databases of t = 2 realms the same
// attack finds the PIN at once (the control that shows the attack works).
//
// Why no check exists, beyond the attack finding none: what one realm
// holds that depends on the PIN (unlock tag, secret commitment, sealed
// secret) is keyed by the whole OPRF key k or the whole scalar s. Shamir
// sharing with threshold 2 makes k uniformly random given k_1, so for
// every PIN p the value k·HashToGroup(Argon2id(p)) that the tag depends
// on is a uniformly random group element, whatever p is: testing a guess
// means guessing k, a 252-bit secret, and the realm's data gives the same
// odds to every PIN. Argon2id plays no part in this (the test uses cheap
// parameters so it can try all 10,000 PINs quickly).
func TestOneRealmCannotTestPINs(t *testing.T) {
	if testing.Short() {
		t.Skip("tries 10,000 PINs several times")
	}
	d := startRealms(t, 3, 2, nil)
	ctx := ctxT(t)
	n, _ := rand.Int(rand.Reader, big.NewInt(10000))
	pin := fmt.Sprintf("%04d", n.Int64())
	params := pinbackup.Params{Time: 1, MemoryKiB: 64, Threads: 1}
	key := pinbackup.NewBackupKey()
	if err := d.client.Register(ctx, "frank", []byte(pin), key, params, 0); err != nil {
		t.Fatal(err)
	}
	// Some recovery traffic, so the files hold whatever it leaves.
	if _, err := d.client.Recover(ctx, "frank", []byte(pin)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.client.Recover(ctx, "frank", []byte(pin+"0")); err == nil {
		t.Fatal("a wrong PIN recovered")
	}
	for _, r := range d.realms {
		r.stop(t)
	}

	var held []heldRealm
	var version []byte
	for i, r := range d.realms {
		path := filepath.Join(r.dir, realm.DBFile)
		if got := tables(t, path); !slices.Equal(sortStrings(got), []string{"registrations", "tombstones"}) {
			t.Fatalf("realm %d has tables %v; classify any new one", i, got)
		}
		if rows := readRows(t, path, "tombstones"); len(rows) != 0 {
			t.Fatalf("realm %d has tombstones %v", i, rows)
		}
		rows := readRows(t, path, "registrations")
		if len(rows) != 1 {
			t.Fatalf("realm %d holds %d registrations", i, len(rows))
		}
		row := rows[0]
		for col := range row {
			if _, ok := columns[col]; !ok {
				t.Fatalf("realm %d stores column %q, which this test does not classify", i, col)
			}
		}
		var p pinbackup.Params
		if err := json.Unmarshal([]byte(row["params"].(string)), &p); err != nil || p != params {
			t.Fatalf("params %v: %v", row["params"], err)
		}
		version = row["version"].([]byte)
		ks := row["key_share"].([]byte)
		ss := row["secret_share"].([]byte)
		h := heldRealm{
			id:         d.set.Realms[i].ID(),
			index:      int(ks[0]),
			k:          scalar(t, ks[1:]),
			s:          scalar(t, ss[1:]),
			tag:        row["unlock_tag"].([]byte),
			commitment: row["secret_commitment"].([]byte),
			share:      ss,
			sealed:     row["sealed_secret"].([]byte),
		}
		held = append(held, h)
	}
	for _, c := range sortedKeys(columns) {
		t.Logf("stored %-18s %s", c, columns[c])
	}

	// The control: two realms' databases give the PIN away.
	got := attack(t, "frank", version, params, 2, 3, held[:2])
	if !slices.Equal(got, []string{pin}) {
		t.Fatalf("with 2 realms' data the attack found %v, want exactly [%s]: the attack is broken", got, pin)
	}
	t.Logf("with realms 1+2 (t = 2): the attack singles out PIN %s among 10,000", pin)

	// The claim: any one realm's database alone distinguishes no PIN.
	for i := range held {
		if got := attack(t, "frank", version, params, 2, 3, held[i:i+1]); len(got) != 0 {
			t.Fatalf("with only realm %d's data the attack distinguished %v (the PIN is %s)", i+1, got, pin)
		}
		t.Logf("with realm %d alone (t-1 = 1): 0 of 10,000 PINs distinguished, the right one included", i+1)
	}
}

func scalar(t *testing.T, b []byte) group.Scalar {
	t.Helper()
	s := group.Ristretto255.NewScalar()
	if err := s.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	return s
}

func sortStrings(s []string) []string { s = slices.Clone(s); sort.Strings(s); return s }

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
