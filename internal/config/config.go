// Package config is parleyd's one typed configuration.
//
// Values come, each overriding the one before: the defaults (Defaults), an
// optional JSON file (--config or PARLEY_CONFIG), the environment
// (PARLEY_<FIELD>, e.g. PARLEY_ADDR, PARLEY_DATA_DIR) and the command-line
// flags (--addr, --data, ...). Durations are Go duration strings ("90s",
// "24h"). Load validates the result; Config.JSON prints it.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every error about a bad configuration value.
var ErrInvalid = errors.New("config: invalid configuration")

// Config is the whole configuration of parleyd. The json tag names the key
// in the config file, and (upper-cased, prefixed with PARLEY_) the
// environment variable; the flag tag names the command-line flag.
type Config struct {
	Addr         string `json:"addr" flag:"addr" usage:"listen address host:port (port 0 picks a free one)"`
	DataDir      string `json:"data_dir" flag:"data" usage:"data folder (holds parley.db), created with mode 0700"`
	DB           string `json:"db" flag:"db" usage:"database: empty for SQLite in the data folder, or postgres://user@host:5432/db?sslmode=... for PostgreSQL (several nodes)"`
	NATS         string `json:"nats" flag:"nats" usage:"fan-out between nodes: empty for in-process (one node), or nats://host:4222 (several URLs comma-separated)"`
	NATSPrefix   string `json:"nats_prefix" flag:"nats-prefix" usage:"NATS subject prefix; every node of one deployment uses the same"`
	MetricsAddr  string `json:"metrics_addr" flag:"metrics-addr" usage:"serve Prometheus /metrics on this separate host:port instead of on addr"`
	PprofAddr    string `json:"pprof_addr" flag:"pprof-addr" usage:"serve Go's profiler (net/http/pprof, /debug/pprof/) on this loopback host:port, for performance work (empty: off)"`
	TLSCert      string `json:"tls_cert" flag:"tls-cert" usage:"TLS certificate file (PEM); serve HTTPS with --tls-key"`
	TLSKey       string `json:"tls_key" flag:"tls-key" usage:"TLS private key file (PEM)"`
	InsecureHTTP bool   `json:"insecure_http" flag:"insecure-http" usage:"allow plain HTTP on a non-loopback address (behind a TLS proxy)"`
	// TrustedProxies: comma-separated addresses or CIDR prefixes of the
	// proxies in front; a request from one is keyed by the client address
	// its X-Forwarded-For names (ParseTrustedProxies).
	TrustedProxies string `json:"trusted_proxies" flag:"trusted-proxies" usage:"comma-separated addresses or CIDR prefixes of the load balancers or proxies in front, whose X-Forwarded-For names the client (empty: trust none)"`
	LogLevel       string `json:"log_level" flag:"log-level" usage:"debug, info, warn or error"`
	LogFormat      string `json:"log_format" flag:"log-format" usage:"text or json"`

	TokenTTL     time.Duration `json:"token_ttl" flag:"token-ttl" usage:"lifetime of a bearer token"`
	ChallengeTTL time.Duration `json:"challenge_ttl" flag:"challenge-ttl" usage:"lifetime of an auth challenge"`
	LinkTTL      time.Duration `json:"link_ttl" flag:"link-ttl" usage:"lifetime of a device-linking session"`

	Registration  string  `json:"registration" flag:"registration" usage:"who may register: open (anyone) or invite (with a code from 'parleyd invite create')"`
	RegisterRate  float64 `json:"register_rate" flag:"register-rate" usage:"registrations per minute per client address"`
	RegisterBurst int     `json:"register_burst" flag:"register-burst" usage:"registration burst per client address"`
	BundleRate    float64 `json:"bundle_rate" flag:"bundle-rate" usage:"prekey bundle fetches per minute per account"`
	BundleBurst   int     `json:"bundle_burst" flag:"bundle-burst" usage:"prekey bundle fetch burst per account"`
	JoinRate      float64 `json:"join_rate" flag:"join-rate" usage:"link joins per minute per client address"`
	JoinBurst     int     `json:"join_burst" flag:"join-burst" usage:"link join burst per client address"`

	MaxEnvelopeBytes int   `json:"max_envelope_bytes" flag:"max-envelope-bytes" usage:"largest ciphertext for one device"`
	MaxBodyBytes     int64 `json:"max_body_bytes" flag:"max-body-bytes" usage:"largest request body"`
	MaxUnacked       int   `json:"max_unacked" flag:"max-unacked" usage:"envelopes sent ahead on a WebSocket without an ack"`

	BlobDir        string        `json:"blob_dir" flag:"blob-dir" usage:"folder of the encrypted file blobs, created with mode 0700 (empty: <data_dir>/blobs)"`
	BlobS3         string        `json:"blob_s3" flag:"blob-s3" usage:"S3-compatible bucket for the encrypted file blobs of a cluster, as https://host[:port]/bucket (path-style); needs db=postgres://, which holds their metadata (empty: blob_dir)"`
	BlobS3Region   string        `json:"blob_s3_region" flag:"blob-s3-region" usage:"region of blob_s3, for request signing"`
	BlobS3KeyID    string        `json:"blob_s3_key_id" flag:"blob-s3-key-id" usage:"access key id for blob_s3 (empty: $AWS_ACCESS_KEY_ID)"`
	BlobS3Secret   string        `json:"blob_s3_secret_file" flag:"blob-s3-secret-file" usage:"file holding the secret access key for blob_s3 (empty: $AWS_SECRET_ACCESS_KEY)"`
	MaxBlobBytes   int64         `json:"max_blob_bytes" flag:"max-blob-bytes" usage:"largest blob (one encrypted file) an upload may declare"`
	BlobQuotaBytes int64         `json:"blob_quota_bytes" flag:"blob-quota-bytes" usage:"bytes of blobs, uploading or stored, one account may hold"`
	BlobTTL        time.Duration `json:"blob_ttl" flag:"blob-ttl" usage:"how long a finished blob is kept at most (it goes sooner once every recipient device fetched it)"`
	BlobUploadTTL  time.Duration `json:"blob_upload_ttl" flag:"blob-upload-ttl" usage:"how long an unfinished upload is kept before it is dropped"`

	PollInterval time.Duration `json:"poll_interval" flag:"poll-interval" usage:"an idle WebSocket re-reads its queue this often, in case a fan-out hint was lost (0s: never)"`

	PingInterval    time.Duration `json:"ping_interval" flag:"ping-interval" usage:"WebSocket keepalive ping interval"`
	WriteTimeout    time.Duration `json:"write_timeout" flag:"write-timeout" usage:"bound on one WebSocket write or ping"`
	ExpireInterval  time.Duration `json:"expire_interval" flag:"expire-interval" usage:"how often expired tokens and links are deleted"`
	ShutdownTimeout time.Duration `json:"shutdown_timeout" flag:"shutdown-timeout" usage:"bound on graceful shutdown"`

	// The TURN/STUN relay for calls (see internal/relay and docs/PROTOCOL-calls.md).
	TURNUDPAddr        string        `json:"turn_udp_addr" flag:"turn-udp-addr" usage:"TURN/STUN relay UDP listen host:port, e.g. 0.0.0.0:3478 (empty: no UDP relay)"`
	TURNTCPAddr        string        `json:"turn_tcp_addr" flag:"turn-tcp-addr" usage:"TURN/STUN relay TCP listen host:port (empty: no TCP relay)"`
	TURNRealm          string        `json:"turn_realm" flag:"turn-realm" usage:"TURN realm"`
	TURNPublicHost     string        `json:"turn_public_host" flag:"turn-public-host" usage:"host name or IP that clients dial for TURN (empty: the TURN listen host, else the host the API was reached at)"`
	TURNRelayIP        string        `json:"turn_relay_ip" flag:"turn-relay-ip" usage:"public IPv4 address of relayed candidates (empty: the TURN listen host, which must then be a specific address)"`
	TURNRelayMinPort   int           `json:"turn_relay_min_port" flag:"turn-relay-min-port" usage:"lowest relayed UDP port (0 with turn_relay_max_port 0: any)"`
	TURNRelayMaxPort   int           `json:"turn_relay_max_port" flag:"turn-relay-max-port" usage:"highest relayed UDP port"`
	TURNSecretFile     string        `json:"turn_secret_file" flag:"turn-secret-file" usage:"file holding the TURN credential secret, shared by every node (empty: <data_dir>/turn-secret, generated on first start)"`
	TURNCredentialTTL  time.Duration `json:"turn_credential_ttl" flag:"turn-credential-ttl" usage:"lifetime of the TURN credentials handed to a device (a call longer than this loses its relay)"`
	TURNMaxAllocations int           `json:"turn_max_allocations" flag:"turn-max-allocations" usage:"live TURN allocations one account may hold (all its devices)"`
	TURNAllowLoopback  bool          `json:"turn_allow_loopback" flag:"turn-allow-loopback" usage:"let the relay send to loopback addresses (tests only)"`
	TURNAllowPrivate   bool          `json:"turn_allow_private" flag:"turn-allow-private" usage:"let the relay send to private (RFC 1918, fc00::/7) addresses (a deployment inside one network)"`

	// PIN backup (see pin.go and docs/PROTOCOL-pin.md §10).
	Realms            string        `json:"realms" flag:"realms" usage:"PIN-backup realms, in order, comma-separated KEY@URL (KEY: the realm's base64 public key from 'parley-realm key'); empty: no PIN backup"`
	RealmThreshold    int           `json:"realm_threshold" flag:"realm-threshold" usage:"realms needed to recover a PIN backup (t of the n realms)"`
	RealmTokenKeyFile string        `json:"realm_token_key_file" flag:"realm-token-key-file" usage:"file holding the realm token signing key, shared by every node (empty: <data_dir>/realm-token.key, generated on first start; 'parleyd realm-key' prints its public key)"`
	RealmTokenTTL     time.Duration `json:"realm_token_ttl" flag:"realm-token-ttl" usage:"lifetime of a realm access token (realms refuse tokens longer than their max_token_ttl, default 10m)"`
	RecoverRate       float64       `json:"recover_rate" flag:"recover-rate" usage:"PIN recovery token requests per hour per handle"`
	RecoverBurst      int           `json:"recover_burst" flag:"recover-burst" usage:"PIN recovery token request burst per handle"`
	RecoverAddrRate   float64       `json:"recover_addr_rate" flag:"recover-addr-rate" usage:"PIN recovery token requests per hour per client address"`
	RecoverAddrBurst  int           `json:"recover_addr_burst" flag:"recover-addr-burst" usage:"PIN recovery token request burst per client address"`
	BackupDir         string        `json:"backup_dir" flag:"backup-dir" usage:"folder of the sealed PIN-backup blobs, one file per account, mode 0700 (empty: the database's pin_backups table when db is postgres://, else <data_dir>/backups)"`
}

// Defaults returns the built-in configuration.
func Defaults() Config {
	return Config{
		Addr:             "127.0.0.1:8080",
		DataDir:          "./parley-data",
		NATSPrefix:       "parley",
		BlobS3Region:     "us-east-1",
		LogLevel:         "info",
		LogFormat:        "text",
		TokenTTL:         24 * time.Hour,
		ChallengeTTL:     60 * time.Second,
		LinkTTL:          10 * time.Minute,
		Registration:     "open",
		RegisterRate:     5,
		RegisterBurst:    10,
		BundleRate:       120,
		BundleBurst:      60,
		JoinRate:         10,
		JoinBurst:        10,
		MaxEnvelopeBytes: 128 << 10,
		MaxBodyBytes:     4 << 20,
		MaxUnacked:       500,
		PollInterval:     5 * time.Second,
		PingInterval:     30 * time.Second,
		WriteTimeout:     10 * time.Second,
		ExpireInterval:   time.Minute,
		ShutdownTimeout:  15 * time.Second,

		TURNRealm:          "parley",
		TURNCredentialTTL:  12 * time.Hour,
		TURNMaxAllocations: 16,

		// 4 GiB of plaintext plus the age STREAM overhead (16 bytes per 64 KiB).
		MaxBlobBytes:   4<<30 + 1<<20,
		BlobQuotaBytes: 10 << 30,
		BlobTTL:        30 * 24 * time.Hour,
		BlobUploadTTL:  7 * 24 * time.Hour,

		RealmThreshold:   2,
		RealmTokenTTL:    5 * time.Minute,
		RecoverRate:      6,
		RecoverBurst:     5,
		RecoverAddrRate:  30,
		RecoverAddrBurst: 10,
	}
}

// EnvPrefix prefixes every environment variable.
const EnvPrefix = "PARLEY_"

// EnvConfigFile names the config file when --config is not given.
const EnvConfigFile = "PARLEY_CONFIG"

// field is one settable field of Config.
type field struct {
	index int
	key   string // json key
	env   string
	flag  string
	usage string
	typ   reflect.Type
}

var durationType = reflect.TypeFor[time.Duration]()

func fields() []field {
	t := reflect.TypeFor[Config]()
	out := make([]field, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("json")
		out = append(out, field{
			index: i,
			key:   key,
			env:   EnvPrefix + strings.ToUpper(key),
			flag:  f.Tag.Get("flag"),
			usage: f.Tag.Get("usage"),
			typ:   f.Type,
		})
	}
	return out
}

// set parses s into field f of c.
func (f field) set(c *Config, s string) error {
	v := reflect.ValueOf(c).Elem().Field(f.index)
	switch {
	case f.typ == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration like 30s or 24h", s)
		}
		v.SetInt(int64(d))
	case f.typ.Kind() == reflect.String:
		v.SetString(s)
	case f.typ.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	case f.typ.Kind() == reflect.Int || f.typ.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		v.SetInt(n)
	case f.typ.Kind() == reflect.Float64:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		v.SetFloat(x)
	default:
		return fmt.Errorf("unsupported field type %s", f.typ)
	}
	return nil
}

// setJSON decodes a config-file value into field f of c.
func (f field) setJSON(c *Config, raw json.RawMessage) error {
	v := reflect.ValueOf(c).Elem().Field(f.index)
	if f.typ == durationType {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("want a duration string like \"30s\", got %s", raw)
		}
		return f.set(c, s)
	}
	p := reflect.New(f.typ)
	if err := json.Unmarshal(raw, p.Interface()); err != nil {
		return fmt.Errorf("want a %s, got %s", f.typ.Kind(), raw)
	}
	v.Set(p.Elem())
	return nil
}

// Load builds the effective configuration from args (the command-line
// flags, without the program name) and the environment looked up with
// getenv (os.LookupEnv in parleyd), then validates it. The flag --config
// (or PARLEY_CONFIG) names an optional JSON file. Flag errors and -h print
// to output.
func Load(args []string, getenv func(string) (string, bool), output io.Writer) (Config, error) {
	c, _, err := LoadCommand("parleyd", args, getenv, output, nil, 0)
	return c, err
}

// LoadCommand is Load for a parleyd subcommand: extra, if set, adds the
// command's own flags to the configuration's (they may come in any order,
// before or after positional arguments), and the positional arguments are
// returned, at most maxArgs of them.
func LoadCommand(name string, args []string, getenv func(string) (string, bool), output io.Writer,
	extra func(*flag.FlagSet), maxArgs int) (Config, []string, error) {
	fs, configPath, parsed := NewFlagSet(name, output)
	if extra != nil {
		extra(fs)
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return Config{}, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if len(pos) > maxArgs {
		return Config{}, nil, fmt.Errorf("%w: unexpected argument %q", ErrInvalid, pos[maxArgs])
	}
	c, err := build(getenv, fs, *configPath, parsed)
	return c, pos, err
}

// build is the configuration from the defaults, the file at path (or
// PARLEY_CONFIG), the environment and the flags set in fs, validated.
func build(getenv func(string) (string, bool), fs *flag.FlagSet, path string, parsed map[string]flag.Value) (Config, error) {
	c := Defaults()

	if path == "" {
		path, _ = getenv(EnvConfigFile)
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: reading config file: %w", err)
		}
		if err := c.applyFile(b); err != nil {
			return Config{}, fmt.Errorf("%w: %s: %w", ErrInvalid, path, err)
		}
	}

	for _, f := range fields() {
		s, ok := getenv(f.env)
		if !ok {
			continue
		}
		if err := f.set(&c, s); err != nil {
			return Config{}, fmt.Errorf("%w: %s: %w", ErrInvalid, f.env, err)
		}
	}

	var flagErr error
	fs.Visit(func(fl *flag.Flag) {
		for _, f := range fields() {
			if f.flag == fl.Name && flagErr == nil {
				if err := f.set(&c, parsed[f.flag].String()); err != nil {
					flagErr = fmt.Errorf("%w: --%s: %w", ErrInvalid, f.flag, err)
				}
			}
		}
	})
	if flagErr != nil {
		return Config{}, flagErr
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// NewFlagSet returns a flag set with one flag per field plus --config. The
// flags hold text only; Load applies the ones that were set.
func NewFlagSet(name string, output io.Writer) (fs *flag.FlagSet, configPath *string, values map[string]flag.Value) {
	fs = flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(output)
	configPath = fs.String("config", "", "JSON config file (also "+EnvConfigFile+")")
	values = make(map[string]flag.Value)
	def := Defaults()
	for _, f := range fields() {
		v := &textValue{s: f.format(&def), isBool: f.typ.Kind() == reflect.Bool}
		values[f.flag] = v
		fs.Var(v, f.flag, f.usage+" ("+f.env+")")
	}
	return fs, configPath, values
}

// textValue is a flag.Value that keeps the text; parsing happens in Load so
// that errors name the field uniformly.
type textValue struct {
	s      string
	isBool bool
}

func (v *textValue) String() string     { return v.s }
func (v *textValue) Set(s string) error { v.s = s; return nil }
func (v *textValue) IsBoolFlag() bool   { return v.isBool }

// format returns field f of c as flag or environment text.
func (f field) format(c *Config) string {
	v := reflect.ValueOf(c).Elem().Field(f.index)
	if f.typ == durationType {
		return time.Duration(v.Int()).String()
	}
	return fmt.Sprint(v.Interface())
}

func (c *Config) applyFile(b []byte) error {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	known := make(map[string]field)
	for _, f := range fields() {
		known[f.key] = f
	}
	for k, raw := range m {
		f, ok := known[k]
		if !ok {
			return fmt.Errorf("unknown key %q", k)
		}
		if err := f.setJSON(c, raw); err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
	}
	return nil
}

// JSON returns the configuration as indented JSON, in field order, with
// durations as Go duration strings: the format of the config file.
func (c Config) JSON() []byte {
	var buf bytes.Buffer
	buf.WriteString("{\n")
	fs := fields()
	for i, f := range fs {
		v := reflect.ValueOf(&c).Elem().Field(f.index)
		var val any = v.Interface()
		if f.typ == durationType {
			val = time.Duration(v.Int()).String()
		}
		b, _ := json.Marshal(val) // strings, numbers and booleans always marshal
		fmt.Fprintf(&buf, "  %q: %s", f.key, b)
		if i < len(fs)-1 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
	}
	buf.WriteString("}\n")
	return buf.Bytes()
}

// Validate checks every value and the combination of listen address and
// TLS.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return bad("addr %q is not host:port: %v", c.Addr, err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return bad("tls_cert and tls_key must be given together")
	}
	if c.TLSCert == "" && !c.InsecureHTTP && !isLoopback(host) {
		return bad("addr %q is not a loopback address and no TLS certificate is configured: "+
			"set --tls-cert and --tls-key, or --insecure-http if a TLS proxy sits in front", c.Addr)
	}
	if c.DataDir == "" {
		return bad("data_dir is empty")
	}
	if c.DB != "" && !strings.HasPrefix(c.DB, "postgres://") && !strings.HasPrefix(c.DB, "postgresql://") {
		return bad("db must be empty (SQLite in data_dir) or a postgres:// URL")
	}
	if c.NATS != "" {
		for u := range strings.SplitSeq(c.NATS, ",") {
			u = strings.TrimSpace(u)
			if !strings.HasPrefix(u, "nats://") && !strings.HasPrefix(u, "tls://") {
				return bad("nats %q must be empty (in-process) or nats:// or tls:// URLs, comma-separated", u)
			}
		}
	}
	if c.BlobS3 != "" {
		if c.DB == "" {
			return bad("blob_s3 keeps the blobs' metadata in PostgreSQL: set db to a postgres:// URL too")
		}
		if _, _, err := SplitBlobS3(c.BlobS3); err != nil {
			return bad("%v", err)
		}
	}
	if _, err := ParseTrustedProxies(c.TrustedProxies); err != nil {
		return bad("%v", err)
	}
	if !validSubjectPrefix(c.NATSPrefix) {
		return bad("nats_prefix %q must be dot-separated tokens of A-Z, a-z, 0-9, _ and -", c.NATSPrefix)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return bad("metrics_addr %q is not host:port: %v", c.MetricsAddr, err)
		}
	}
	if c.PprofAddr != "" {
		h, _, err := net.SplitHostPort(c.PprofAddr)
		if err != nil {
			return bad("pprof_addr %q is not host:port: %v", c.PprofAddr, err)
		}
		if !isLoopback(h) {
			return bad("pprof_addr %q is not a loopback address: the profiler shows the server's internals", c.PprofAddr)
		}
	}
	if c.PollInterval != 0 && (c.PollInterval < 100*time.Millisecond || c.PollInterval > time.Hour) {
		return bad("poll_interval %s is outside 100ms..1h (or 0s: never)", c.PollInterval)
	}
	switch c.Registration {
	case "open", "invite":
	default:
		return bad("registration %q is not open or invite", c.Registration)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("log_level %q is not debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return bad("log_format %q is not text or json", c.LogFormat)
	}
	durations := []struct {
		name     string
		v        time.Duration
		min, max time.Duration
	}{
		{"token_ttl", c.TokenTTL, time.Minute, 365 * 24 * time.Hour},
		{"challenge_ttl", c.ChallengeTTL, time.Second, time.Hour},
		{"link_ttl", c.LinkTTL, 10 * time.Second, 24 * time.Hour},
		{"ping_interval", c.PingInterval, 100 * time.Millisecond, time.Hour},
		{"write_timeout", c.WriteTimeout, 100 * time.Millisecond, 10 * time.Minute},
		{"expire_interval", c.ExpireInterval, time.Second, 24 * time.Hour},
		{"shutdown_timeout", c.ShutdownTimeout, 0, time.Hour},
	}
	for _, d := range durations {
		if d.v < d.min || d.v > d.max {
			return bad("%s %s is outside %s..%s", d.name, d.v, d.min, d.max)
		}
	}
	rates := []struct {
		name  string
		rate  float64
		burst int
	}{
		{"register", c.RegisterRate, c.RegisterBurst},
		{"bundle", c.BundleRate, c.BundleBurst},
		{"join", c.JoinRate, c.JoinBurst},
	}
	for _, r := range rates {
		if !(r.rate > 0 && r.rate <= 1e6) {
			return bad("%s_rate %v must be above 0 and at most 1000000 per minute", r.name, r.rate)
		}
		if r.burst < 1 || r.burst > 1e6 {
			return bad("%s_burst %d must be between 1 and 1000000", r.name, r.burst)
		}
	}
	if c.MaxBodyBytes < 1<<10 || c.MaxBodyBytes > 1<<30 {
		return bad("max_body_bytes %d is outside 1 KiB..1 GiB", c.MaxBodyBytes)
	}
	if c.MaxEnvelopeBytes < 1 || int64(c.MaxEnvelopeBytes) > c.MaxBodyBytes {
		return bad("max_envelope_bytes %d must be between 1 and max_body_bytes (%d)", c.MaxEnvelopeBytes, c.MaxBodyBytes)
	}
	if c.MaxUnacked < 1 || c.MaxUnacked > 100000 {
		return bad("max_unacked %d is outside 1..100000", c.MaxUnacked)
	}
	if err := c.validateTURN(); err != nil {
		return err
	}
	if err := c.validatePIN(); err != nil {
		return err
	}
	if c.MaxBlobBytes < 1 || c.MaxBlobBytes > 1<<50 {
		return bad("max_blob_bytes %d is outside 1..2^50", c.MaxBlobBytes)
	}
	if c.BlobQuotaBytes < 1 || c.BlobQuotaBytes > 1<<60 {
		return bad("blob_quota_bytes %d is outside 1..2^60", c.BlobQuotaBytes)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"blob_ttl", c.BlobTTL}, {"blob_upload_ttl", c.BlobUploadTTL}} {
		if d.v < time.Second || d.v > 5*365*24*time.Hour {
			return bad("%s %s is outside 1s..43800h (5 years)", d.name, d.v)
		}
	}
	return nil
}

// validSubjectPrefix reports whether p is one or more NATS subject tokens:
// no wildcards, no spaces, no empty token.
func validSubjectPrefix(p string) bool {
	if p == "" || len(p) > 64 {
		return false
	}
	for tok := range strings.SplitSeq(p, ".") {
		if tok == "" {
			return false
		}
		for i := 0; i < len(tok); i++ {
			c := tok[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
				return false
			}
		}
	}
	return true
}

// isLoopback reports whether a listen host only accepts local connections.
// An empty host listens on every interface.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Logger returns a slog logger writing to w at the configured level and
// format.
func (c Config) Logger(w io.Writer) *slog.Logger {
	var level slog.Level
	switch c.LogLevel {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// ParseTrustedProxies parses a trusted_proxies value: comma-separated IP
// addresses (each a prefix of its full length) and CIDR prefixes, spaces
// allowed around each. An empty value trusts none.
func ParseTrustedProxies(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if p, err := netip.ParsePrefix(part); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("trusted_proxies: %q is not an IP address or CIDR prefix", part)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// SplitBlobS3 splits a blob_s3 value, https://host[:port]/bucket, into the
// service's endpoint and the bucket.
func SplitBlobS3(v string) (endpoint, bucket string, err error) {
	u, err := url.Parse(v)
	if err != nil {
		return "", "", fmt.Errorf("blob_s3 %q is not a URL: %v", v, err)
	}
	bucket = strings.TrimPrefix(u.Path, "/")
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return "", "", fmt.Errorf("blob_s3 %q must be an https:// (or http://) URL", v)
	case u.Host == "":
		return "", "", fmt.Errorf("blob_s3 %q has no host", v)
	case u.User != nil:
		return "", "", fmt.Errorf("blob_s3 %q carries credentials: use blob_s3_key_id and blob_s3_secret_file", v)
	case bucket == "" || strings.Contains(bucket, "/"):
		return "", "", fmt.Errorf("blob_s3 %q must name one bucket as its path: https://host/bucket", v)
	case u.RawQuery != "" || u.Fragment != "":
		return "", "", fmt.Errorf("blob_s3 %q must not have a query or fragment", v)
	}
	return u.Scheme + "://" + u.Host, bucket, nil
}
