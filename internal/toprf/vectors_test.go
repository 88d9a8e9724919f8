package toprf

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cloudflare/circl/oprf"
)

// rfcVector is one entry of circl's copy of the RFC 9497 Appendix A
// vectors (oprf/testdata/rfc9497.json.gz).
type rfcVector struct {
	Identifier string `json:"identifier"`
	Mode       int    `json:"mode"`
	SkSm       string `json:"skSm"`
	Vectors    []struct {
		Batch             int    `json:"Batch"`
		Blind             string `json:"Blind"`
		BlindedElement    string `json:"BlindedElement"`
		EvaluationElement string `json:"EvaluationElement"`
		Input             string `json:"Input"`
		Output            string `json:"Output"`
	} `json:"vectors"`
}

// circlDir finds the circl module folder with `go list -m`.
func circlDir(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goBin, "list", "-m", "-f", "{{.Dir}}", "github.com/cloudflare/circl").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/cloudflare/circl: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		t.Fatal("go list -m github.com/cloudflare/circl: the module is not downloaded")
	}
	return dir
}

func loadRFC9497(t *testing.T) []rfcVector {
	t.Helper()
	path := filepath.Join(circlDir(t), "oprf", "testdata", "rfc9497.json.gz")
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the RFC 9497 vectors are missing: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var all []rfcVector
	if err := json.NewDecoder(zr).Decode(&all); err != nil {
		t.Fatal(err)
	}
	var out []rfcVector
	for _, v := range all {
		if v.Identifier == suiteID && v.Mode == int(oprf.BaseMode) {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no %s mode-0 vectors", path, suiteID)
	}
	return out
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// subsets returns every k-element subset of {0..n-1}.
func subsets(n, k int) [][]int {
	var out [][]int
	var rec func(start int, cur []int)
	rec = func(start int, cur []int) {
		if len(cur) == k {
			out = append(out, append([]int(nil), cur...))
			return
		}
		for i := start; i < n; i++ {
			rec(i+1, append(cur, i))
		}
	}
	rec(0, nil)
	return out
}

// TestRFC9497Vectors splits each vector's key skSm into shares, evaluates
// the vector's blinded input with every threshold subset of shares, and
// requires the vector's blinded element, evaluation element and output.
func TestRFC9497Vectors(t *testing.T) {
	checked := 0
	for _, set := range loadRFC9497(t) {
		sk, err := ParsePrivateKey(unhex(t, set.SkSm))
		if err != nil {
			t.Fatal(err)
		}
		for vi, v := range set.Vectors {
			if v.Batch != 1 {
				continue
			}
			input := unhex(t, v.Input)
			wantOut := unhex(t, v.Output)
			r, err := parseScalar(unhex(t, v.Blind))
			if err != nil {
				t.Fatal(err)
			}

			// The unblinded evaluation with the whole key.
			out, err := sk.Evaluate(input)
			if err != nil || !bytes.Equal(out, wantOut) {
				t.Fatalf("vector %d: Evaluate = %x, %v; want %x", vi, out, err, wantOut)
			}

			for _, tn := range []struct{ t, n int }{{2, 3}, {3, 3}, {3, 5}, {1, 1}} {
				shares, err := sk.Split(tn.t, tn.n)
				if err != nil {
					t.Fatal(err)
				}
				for _, sub := range subsets(tn.n, tn.t) {
					st, blinded, err := blindWith(input, r)
					if err != nil {
						t.Fatal(err)
					}
					if got := blinded.Bytes(); !bytes.Equal(got, unhex(t, v.BlindedElement)) {
						t.Fatalf("vector %d: blinded element %x, want %s", vi, got, v.BlindedElement)
					}
					var evals []ShareEvaluation
					var idx []int
					for _, i := range sub {
						ev, err := shares[i].BlindEvaluate(blinded)
						if err != nil {
							t.Fatal(err)
						}
						// Through the wire encoding, as a client gets it.
						ev, err = ParseEvaluation(ev.Bytes())
						if err != nil {
							t.Fatal(err)
						}
						evals = append(evals, ShareEvaluation{Index: shares[i].Index(), Public: shares[i].Public(), Evaluation: ev})
						idx = append(idx, shares[i].Index())
					}
					// The combined element is the vector's EvaluationElement.
					lambda, err := LagrangeAtZero(idx)
					if err != nil {
						t.Fatal(err)
					}
					z := g.Identity()
					for i, ev := range evals {
						z.Add(z, g.NewElement().Mul(ev.Evaluation.z, lambda[i]))
					}
					if got := elementBytes(z); !bytes.Equal(got, unhex(t, v.EvaluationElement)) {
						t.Fatalf("vector %d, %d-of-%d subset %v: combined element %x, want %s", vi, tn.t, tn.n, sub, got, v.EvaluationElement)
					}
					out, err := st.Finalize(evals)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(out, wantOut) {
						t.Fatalf("vector %d, %d-of-%d subset %v: output %x, want %x", vi, tn.t, tn.n, sub, out, wantOut)
					}
					checked++
				}
			}
		}
	}
	t.Logf("%d threshold evaluations matched the RFC 9497 outputs", checked)
}

// TestFewerThanThreshold: t-1 shares give an output unrelated to the key's.
func TestFewerThanThreshold(t *testing.T) {
	sk := GenerateKey()
	input := []byte("input")
	want, err := sk.Evaluate(input)
	if err != nil {
		t.Fatal(err)
	}
	shares, err := sk.Split(3, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range subsets(5, 2) {
		st, b, err := Blind(input)
		if err != nil {
			t.Fatal(err)
		}
		var evals []ShareEvaluation
		for _, i := range sub {
			ev, err := shares[i].BlindEvaluate(b)
			if err != nil {
				t.Fatal(err)
			}
			evals = append(evals, ShareEvaluation{shares[i].Index(), shares[i].Public(), ev})
		}
		got, err := st.Finalize(evals)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(got, want) {
			t.Fatalf("2 of a 3-of-5 sharing gave the key's output")
		}
	}
}

// TestProofs: a proof verifies only for its own share and its own Z.
func TestProofs(t *testing.T) {
	sk := GenerateKey()
	shares, _ := sk.Split(2, 3)
	_, b, err := Blind([]byte("pin"))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := shares[0].BlindEvaluate(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Verify(shares[0].Public(), b); err != nil {
		t.Fatalf("honest evaluation: %v", err)
	}
	if err := ev.Verify(shares[1].Public(), b); err != ErrBadProof {
		t.Fatalf("against another share's public key: %v, want ErrBadProof", err)
	}
	_, b2, _ := Blind([]byte("other"))
	if err := ev.Verify(shares[0].Public(), b2); err != ErrBadProof {
		t.Fatalf("against another blinded element: %v, want ErrBadProof", err)
	}
	// A server that evaluates with the wrong share but claims its own.
	wrong, _ := shares[1].BlindEvaluate(b)
	forged := &Evaluation{z: wrong.z, proof: ev.proof}
	if err := forged.Verify(shares[0].Public(), b); err != ErrBadProof {
		t.Fatalf("swapped Z: %v, want ErrBadProof", err)
	}
	st, b3, _ := Blind([]byte("x"))
	ev3, _ := shares[1].BlindEvaluate(b3)
	_, err = st.Finalize([]ShareEvaluation{{1, shares[0].Public(), ev3}, {2, shares[1].Public(), ev3}})
	if err == nil {
		t.Fatal("Finalize accepted an evaluation whose proof is for another share")
	}
}

// TestProofIsRFC9497VOPRF: circl's own RFC 9497 VOPRF server, given k_i as
// its key, produces an evaluation and proof that Verify accepts; so a
// realm's proof is the RFC's.
func TestProofIsRFC9497VOPRF(t *testing.T) {
	sk := GenerateKey()
	shares, _ := sk.Split(2, 3)
	ks := new(oprf.PrivateKey)
	if err := ks.UnmarshalBinary(suite, shares[2].Bytes()[1:]); err != nil {
		t.Fatal(err)
	}
	_, b, _ := Blind([]byte("pin"))
	res, err := oprf.NewVerifiableServer(suite, ks).Evaluate(&oprf.EvaluationRequest{Elements: []oprf.Blinded{b.e}})
	if err != nil {
		t.Fatal(err)
	}
	ev := &Evaluation{z: res.Elements[0], proof: res.Proof}
	if err := ev.Verify(shares[2].Public(), b); err != nil {
		t.Fatalf("circl's VOPRF proof: %v", err)
	}
}

func TestSplitBounds(t *testing.T) {
	sk := GenerateKey()
	for _, tn := range [][2]int{{0, 3}, {4, 3}, {2, 256}} {
		if _, err := sk.Split(tn[0], tn[1]); err == nil {
			t.Errorf("Split(%d, %d) succeeded", tn[0], tn[1])
		}
	}
	if _, err := LagrangeAtZero([]int{1, 1}); err == nil {
		t.Error("LagrangeAtZero accepted a repeated index")
	}
	if _, err := LagrangeAtZero([]int{0, 1}); err == nil {
		t.Error("LagrangeAtZero accepted index 0")
	}
	shares, _ := sk.Split(2, 3)
	vals := []int{shares[0].Index(), shares[2].Index()}
	got, err := RecoverScalar(vals, []scalarT{shares[0].k, shares[2].k})
	if err != nil || !got.IsEqual(sk.k) {
		t.Fatalf("RecoverScalar: %v", err)
	}
	if s := fmtString(sk) + fmtString(shares[0]); strings.Contains(s, hex.EncodeToString(sk.Bytes())) {
		t.Fatal("a key printed its bytes")
	}
}
