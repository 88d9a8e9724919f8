// Package toprf is a threshold OPRF: the OPRF of RFC 9497 (suite
// ristretto255-SHA512, mode OPRF 0x00) whose server key k is Shamir-shared
// t-of-n among servers (Parley's realms), in the style of 2HashTDH (Jarecki,
// Kiayias, Krawczyk, Xu 2017).
//
// The client blinds its input once (RFC 9497 §3.3.1 Blind) and sends the
// same blinded element B to every server. Server i holds a share k_i of k
// and answers Z_i = k_i·B with a DLEQ proof that log_G(K_i) = log_B(Z_i),
// where K_i = k_i·G is its public share: the proof is exactly the one an RFC
// 9497 VOPRF server with key k_i would send (§2.2 GenerateProof, context
// string of mode 0x01). The client checks each proof, combines t evaluations
// with the Lagrange coefficients at 0, Z = Σ λ_i·Z_i = k·B, and finishes with
// RFC 9497 Finalize. The output is the RFC 9497 OPRF output of the whole key
// k: the package tests check it against the RFC's vectors.
//
// Every encoding here is fixed-size; every parser is strict (canonical
// scalars and ristretto255 elements, no identity element, no trailing
// bytes), so a parsed value re-encodes to the same bytes.
//
// The package is protocol core: standard library, golang.org/x/crypto and
// circl only; no network, storage or logging.
package toprf

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/oprf"
	"github.com/cloudflare/circl/secretsharing"
	"github.com/cloudflare/circl/zk/dleq"
)

// Sizes of the encodings.
const (
	ElementSize    = 32                       // a ristretto255 element (RFC 9496 encoding)
	ScalarSize     = 32                       // a scalar, little-endian, reduced
	ProofSize      = 2 * ScalarSize           // DLEQ proof c || s (RFC 9497 §2.2)
	EvaluationSize = ElementSize + ProofSize  // Z_i || proof
	KeyShareSize   = 1 + ScalarSize           // u8 index || k_i
	PrivateKeySize = ScalarSize               // k
	OutputSize     = 64                       // SHA-512 output of Finalize
	MaxShares      = 255                      // indices are 1..255
	suiteID        = "ristretto255-SHA512"    // RFC 9497 §4.1
	contextVOPRF   = "OPRFV1-\x01-" + suiteID // RFC 9497 §3.1 contextString, mode 0x01
)

// Errors.
var (
	ErrMalformed = errors.New("toprf: malformed encoding")
	ErrBadProof  = errors.New("toprf: evaluation proof does not verify")
	ErrShares    = errors.New("toprf: invalid set of shares")
	ErrInput     = errors.New("toprf: invalid input")
)

var (
	g     = group.Ristretto255
	suite = oprf.SuiteRistretto255
	// dleqParams are RFC 9497's proof parameters for the VOPRF mode of
	// the suite: a realm's evaluation and proof are what an RFC 9497
	// VOPRF server with key k_i would answer.
	dleqParams = dleq.Params{G: g, H: suite.Hash(), DST: []byte(contextVOPRF)}
)

// noCompare makes a struct incomparable with ==.
type noCompare [0]func()

// PrivateKey is a whole OPRF key k (RFC 9497 skS). It exists on the
// client only while registering: the client splits it into shares and
// forgets it.
type PrivateKey struct {
	_ noCompare
	k group.Scalar
}

// GenerateKey returns a random non-zero key (RFC 9497 §3.2 GenerateKeyPair).
func GenerateKey() *PrivateKey {
	return &PrivateKey{k: g.RandomNonZeroScalar(rand.Reader)}
}

// ParsePrivateKey decodes a 32-byte canonical non-zero scalar (RFC 9497
// SerializeScalar).
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	k, err := parseScalar(b)
	if err != nil || k.IsZero() {
		return nil, fmt.Errorf("%w: private key", ErrMalformed)
	}
	return &PrivateKey{k: k}, nil
}

// Bytes returns the key's 32-byte encoding.
func (k *PrivateKey) Bytes() []byte { return scalarBytes(k.k) }

// String hides the key.
func (k *PrivateKey) String() string { return "toprf.PrivateKey(REDACTED)" }

// GoString hides the key.
func (k *PrivateKey) GoString() string { return k.String() }

// Evaluate is RFC 9497 §3.3.1 Evaluate: the OPRF output for input,
// computed with the whole key, without blinding. The client uses it while
// registering, when it still holds k.
func (k *PrivateKey) Evaluate(input []byte) ([]byte, error) {
	sk, err := k.circl()
	if err != nil {
		return nil, err
	}
	out, err := oprf.NewServer(suite, sk).FullEvaluate(input)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInput, err)
	}
	return out, nil
}

func (k *PrivateKey) circl() (*oprf.PrivateKey, error) {
	sk := new(oprf.PrivateKey)
	if err := sk.UnmarshalBinary(suite, scalarBytes(k.k)); err != nil {
		return nil, fmt.Errorf("toprf: private key: %w", err)
	}
	return sk, nil
}

// Split shares k t-of-n with Shamir's scheme over the scalar field: share i
// (index i, 1..n) is f(i) for a random polynomial f of degree t-1 with
// f(0) = k. Any t shares determine k; fewer than t reveal nothing about it.
func (k *PrivateKey) Split(t, n int) ([]*KeyShare, error) {
	vals, err := SplitScalar(k.k, t, n)
	if err != nil {
		return nil, err
	}
	out := make([]*KeyShare, n)
	for i, v := range vals {
		out[i] = &KeyShare{index: uint8(i + 1), k: v}
	}
	return out, nil
}

// SplitScalar Shamir-shares a scalar t-of-n and returns f(1), ..., f(n).
// pinbackup uses it for the encryption scalar as well.
func SplitScalar(secret group.Scalar, t, n int) ([]group.Scalar, error) {
	if t < 1 || n < t || n > MaxShares {
		return nil, fmt.Errorf("%w: threshold %d of %d shares (want 1 <= t <= n <= %d)", ErrShares, t, n, MaxShares)
	}
	// circl's threshold counts corruptions: t-1 of them, t shares recover.
	ss := secretsharing.New(rand.Reader, uint(t-1), secret)
	shares := ss.Share(uint(n))
	out := make([]group.Scalar, n)
	for i, s := range shares {
		out[i] = s.Value
	}
	return out, nil
}

// KeyShare is server i's share k_i of the key, with its index i.
type KeyShare struct {
	_     noCompare
	index uint8
	k     group.Scalar
}

// Index returns the share's index (1..255).
func (s *KeyShare) Index() int { return int(s.index) }

// Public returns K_i = k_i·G.
func (s *KeyShare) Public() *PublicShare {
	return &PublicShare{e: g.NewElement().MulGen(s.k)}
}

// Bytes returns the storage encoding: u8 index || k_i (32).
func (s *KeyShare) Bytes() []byte {
	return append([]byte{s.index}, scalarBytes(s.k)...)
}

// String hides the share.
func (s *KeyShare) String() string { return fmt.Sprintf("toprf.KeyShare(%d, REDACTED)", s.index) }

// GoString hides the share.
func (s *KeyShare) GoString() string { return s.String() }

// ParseKeyShare decodes KeyShare.Bytes: a non-zero index and a canonical
// non-zero scalar.
func ParseKeyShare(b []byte) (*KeyShare, error) {
	if len(b) != KeyShareSize || b[0] == 0 {
		return nil, fmt.Errorf("%w: key share", ErrMalformed)
	}
	k, err := parseScalar(b[1:])
	if err != nil || k.IsZero() {
		return nil, fmt.Errorf("%w: key share", ErrMalformed)
	}
	return &KeyShare{index: b[0], k: k}, nil
}

// BlindEvaluate is server i's step: Z_i = k_i·B (RFC 9497 §3.3.1
// BlindEvaluate with key k_i) and the RFC 9497 §2.2 proof that Z_i and K_i
// share the discrete logarithm k_i.
func (s *KeyShare) BlindEvaluate(b *BlindedElement) (*Evaluation, error) {
	z := g.NewElement().Mul(b.e, s.k)
	pub := g.NewElement().MulGen(s.k)
	proof, err := dleq.Prover{Params: dleqParams}.ProveBatchRFC9497(s.k, pub,
		[]group.Element{b.e}, []group.Element{z}, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("toprf: proving: %w", err)
	}
	return &Evaluation{z: z, proof: proof}, nil
}

// PublicShare is K_i = k_i·G.
type PublicShare struct{ e group.Element }

// ParsePublicShare decodes a 32-byte ristretto255 element (not the identity).
func ParsePublicShare(b []byte) (*PublicShare, error) {
	e, err := parseElement(b)
	if err != nil {
		return nil, fmt.Errorf("%w: public share", ErrMalformed)
	}
	return &PublicShare{e: e}, nil
}

// Bytes returns the 32-byte encoding.
func (p *PublicShare) Bytes() []byte { return elementBytes(p.e) }

// Equal reports whether p and q are the same element.
func (p *PublicShare) Equal(q *PublicShare) bool { return p.e.IsEqual(q.e) }

// BlindedElement is the client's blinded input B = r·HashToGroup(input).
type BlindedElement struct{ e group.Element }

// ParseBlindedElement decodes a 32-byte ristretto255 element (not the
// identity, RFC 9497 §2.1 DeserializeElement).
func ParseBlindedElement(b []byte) (*BlindedElement, error) {
	e, err := parseElement(b)
	if err != nil {
		return nil, fmt.Errorf("%w: blinded element", ErrMalformed)
	}
	return &BlindedElement{e: e}, nil
}

// Bytes returns the 32-byte encoding.
func (b *BlindedElement) Bytes() []byte { return elementBytes(b.e) }

// Evaluation is server i's answer: Z_i and the DLEQ proof.
type Evaluation struct {
	z     group.Element
	proof *dleq.Proof
}

// ParseEvaluation decodes Z_i (32) || c (32) || s (32).
func ParseEvaluation(b []byte) (*Evaluation, error) {
	if len(b) != EvaluationSize {
		return nil, fmt.Errorf("%w: evaluation", ErrMalformed)
	}
	z, err := parseElement(b[:ElementSize])
	if err != nil {
		return nil, fmt.Errorf("%w: evaluation", ErrMalformed)
	}
	proof := new(dleq.Proof)
	if err := proof.UnmarshalBinary(g, b[ElementSize:]); err != nil {
		return nil, fmt.Errorf("%w: evaluation proof", ErrMalformed)
	}
	return &Evaluation{z: z, proof: proof}, nil
}

// Bytes returns Z_i || c || s.
func (e *Evaluation) Bytes() []byte {
	p, err := e.proof.MarshalBinary()
	if err != nil {
		// A parsed or computed proof always holds two scalars.
		panic("toprf: proof does not encode: " + err.Error())
	}
	return append(elementBytes(e.z), p...)
}

// Verify checks the proof that e was computed from b with the key share
// whose public share is pub (RFC 9497 §2.2.2 VerifyProof).
func (e *Evaluation) Verify(pub *PublicShare, b *BlindedElement) error {
	ok := dleq.Verifier{Params: dleqParams}.VerifyBatchRFC9497(pub.e,
		[]group.Element{b.e}, []group.Element{e.z}, e.proof)
	if !ok {
		return ErrBadProof
	}
	return nil
}

// Blinding is the client's state between Blind and Finalize: the input
// and the blind r. It must not leave the client.
type Blinding struct {
	_       noCompare
	fin     *oprf.FinalizeData
	blinded *BlindedElement
}

// String hides the blind.
func (c *Blinding) String() string { return "toprf.Blinding(REDACTED)" }

// Blind is RFC 9497 §3.3.1 Blind with a random blind r: B = r·HashToGroup(input).
func Blind(input []byte) (*Blinding, *BlindedElement, error) {
	return blindWith(input, g.RandomNonZeroScalar(rand.Reader))
}

// blindWith is Blind with a given blind (RFC 9497 test vectors).
func blindWith(input []byte, r group.Scalar) (*Blinding, *BlindedElement, error) {
	fin, req, err := oprf.NewClient(suite).DeterministicBlind([][]byte{input}, []oprf.Blind{r})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInput, err)
	}
	b := &BlindedElement{e: req.Elements[0]}
	return &Blinding{fin: fin, blinded: b}, b, nil
}

// Blinded returns the blinded element B sent to every server.
func (c *Blinding) Blinded() *BlindedElement { return c.blinded }

// ShareEvaluation is one server's evaluation with the index and public
// share the client holds for it.
type ShareEvaluation struct {
	Index      int
	Public     *PublicShare
	Evaluation *Evaluation
}

// Finalize checks every proof, combines the evaluations with Lagrange
// coefficients at 0 and runs RFC 9497 §3.3.1 Finalize on the result. Pass
// evaluations of exactly threshold distinct shares of one key (more
// consistent ones do no harm; fewer give an unrelated output).
func (c *Blinding) Finalize(evals []ShareEvaluation) ([]byte, error) {
	if len(evals) == 0 {
		return nil, fmt.Errorf("%w: no evaluations", ErrShares)
	}
	idx := make([]int, len(evals))
	for i, ev := range evals {
		if ev.Public == nil || ev.Evaluation == nil {
			return nil, fmt.Errorf("%w: evaluation %d is incomplete", ErrShares, ev.Index)
		}
		if err := ev.Evaluation.Verify(ev.Public, c.blinded); err != nil {
			return nil, fmt.Errorf("toprf: share %d: %w", ev.Index, err)
		}
		idx[i] = ev.Index
	}
	lambda, err := LagrangeAtZero(idx)
	if err != nil {
		return nil, err
	}
	z := g.Identity()
	for i, ev := range evals {
		z.Add(z, g.NewElement().Mul(ev.Evaluation.z, lambda[i]))
	}
	out, err := oprf.NewClient(suite).Finalize(c.fin, &oprf.Evaluation{Elements: []oprf.Evaluated{z}})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrShares, err)
	}
	return out[0], nil
}

// LagrangeAtZero returns, for distinct indices x_1..x_m in 1..255, the
// coefficients λ_i = Π_{j≠i} x_j / (x_j − x_i), so that f(0) = Σ λ_i·f(x_i)
// for every polynomial f of degree below m.
func LagrangeAtZero(indices []int) ([]group.Scalar, error) {
	seen := make(map[int]bool, len(indices))
	xs := make([]group.Scalar, len(indices))
	for i, x := range indices {
		if x < 1 || x > MaxShares || seen[x] {
			return nil, fmt.Errorf("%w: index %d is out of range or repeated", ErrShares, x)
		}
		seen[x] = true
		xs[i] = g.NewScalar().SetUint64(uint64(x))
	}
	out := make([]group.Scalar, len(xs))
	for i := range xs {
		num := g.NewScalar().SetUint64(1)
		den := g.NewScalar().SetUint64(1)
		for j := range xs {
			if j == i {
				continue
			}
			num.Mul(num, xs[j])
			den.Mul(den, g.NewScalar().Sub(xs[j], xs[i]))
		}
		out[i] = num.Mul(num, g.NewScalar().Inv(den))
	}
	return out, nil
}

// RecoverScalar interpolates f(0) from the values f(x_i) at distinct
// indices x_i: Shamir recovery for scalars shared with SplitScalar.
func RecoverScalar(indices []int, values []group.Scalar) (group.Scalar, error) {
	if len(indices) == 0 || len(indices) != len(values) {
		return nil, fmt.Errorf("%w: %d indices for %d values", ErrShares, len(indices), len(values))
	}
	lambda, err := LagrangeAtZero(indices)
	if err != nil {
		return nil, err
	}
	out := g.NewScalar()
	for i, v := range values {
		out.Add(out, g.NewScalar().Mul(lambda[i], v))
	}
	return out, nil
}

func parseScalar(b []byte) (group.Scalar, error) {
	if len(b) != ScalarSize {
		return nil, ErrMalformed
	}
	s := g.NewScalar()
	if err := s.UnmarshalBinary(b); err != nil {
		return nil, ErrMalformed
	}
	return s, nil
}

func parseElement(b []byte) (group.Element, error) {
	if len(b) != ElementSize {
		return nil, ErrMalformed
	}
	e := g.NewElement()
	if err := e.UnmarshalBinary(b); err != nil || e.IsIdentity() {
		return nil, ErrMalformed
	}
	return e, nil
}

func scalarBytes(s group.Scalar) []byte {
	b, err := s.MarshalBinary()
	if err != nil {
		panic("toprf: scalar does not encode: " + err.Error())
	}
	return b
}

func elementBytes(e group.Element) []byte {
	b, err := e.MarshalBinaryCompress()
	if err != nil {
		panic("toprf: element does not encode: " + err.Error())
	}
	return b
}
