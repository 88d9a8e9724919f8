package realm

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// ErrInvalid is wrapped by every error about a bad configuration value.
var ErrInvalid = errors.New("realm: invalid configuration")

// Config is a realm's whole configuration. Values come from Defaults, then
// the environment (PARLEY_REALM_<NAME>, e.g. PARLEY_REALM_ADDR), then the
// flags; Load validates the result.
type Config struct {
	Addr         string `json:"addr"`
	DataDir      string `json:"data_dir"`
	IssuerKey    string `json:"issuer_key"` // parleyd's token public key, standard base64 of 32 bytes
	TLSCert      string `json:"tls_cert"`
	TLSKey       string `json:"tls_key"`
	InsecureHTTP bool   `json:"insecure_http"`
	LogLevel     string `json:"log_level"`
	LogFormat    string `json:"log_format"`

	// MaxTokenTTL bounds how far in the future a token may expire.
	MaxTokenTTL time.Duration `json:"max_token_ttl"`
	// GuessesPerHour and GuessBurst throttle recovery phase 1 per handle.
	GuessesPerHour float64 `json:"guesses_per_hour"`
	GuessBurst     int     `json:"guess_burst"`
	// RequestsPerMinute and RequestBurst throttle every request per handle.
	RequestsPerMinute float64 `json:"requests_per_minute"`
	RequestBurst      int     `json:"request_burst"`
	// MaxAllowedGuesses caps the allowed guesses a registration may ask for.
	MaxAllowedGuesses int           `json:"max_allowed_guesses"`
	MaxBodyBytes      int64         `json:"max_body_bytes"`
	ShutdownTimeout   time.Duration `json:"shutdown_timeout"`
}

// Defaults returns the built-in configuration (IssuerKey must be set).
func Defaults() Config {
	return Config{
		Addr:              "127.0.0.1:8090",
		DataDir:           "./parley-realm-data",
		LogLevel:          "info",
		LogFormat:         "text",
		MaxTokenTTL:       10 * time.Minute,
		GuessesPerHour:    10,
		GuessBurst:        5,
		RequestsPerMinute: 60,
		RequestBurst:      30,
		MaxAllowedGuesses: 10,
		MaxBodyBytes:      64 << 10,
		ShutdownTimeout:   15 * time.Second,
	}
}

// EnvPrefix prefixes every environment variable.
const EnvPrefix = "PARLEY_REALM_"

// setting is one field: its flag and environment names, its usage, and
// pointers to read and write it as text.
type setting struct {
	flag, env, usage string
	get              func(*Config) string
	set              func(*Config, string) error
}

func settings() []setting {
	str := func(flag, env, usage string, f func(*Config) *string) setting {
		return setting{flag, env, usage,
			func(c *Config) string { return *f(c) },
			func(c *Config, s string) error { *f(c) = s; return nil }}
	}
	dur := func(flag, env, usage string, f func(*Config) *time.Duration) setting {
		return setting{flag, env, usage,
			func(c *Config) string { return f(c).String() },
			func(c *Config, s string) error {
				d, err := time.ParseDuration(s)
				if err != nil {
					return fmt.Errorf("%q is not a duration like 30s or 10m", s)
				}
				*f(c) = d
				return nil
			}}
	}
	num := func(flag, env, usage string, f func(*Config) *float64) setting {
		return setting{flag, env, usage,
			func(c *Config) string { return strconv.FormatFloat(*f(c), 'g', -1, 64) },
			func(c *Config, s string) error {
				x, err := strconv.ParseFloat(s, 64)
				if err != nil {
					return fmt.Errorf("%q is not a number", s)
				}
				*f(c) = x
				return nil
			}}
	}
	integer := func(flag, env, usage string, f func(*Config) *int64) setting {
		return setting{flag, env, usage,
			func(c *Config) string { return strconv.FormatInt(*f(c), 10) },
			func(c *Config, s string) error {
				x, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return fmt.Errorf("%q is not a whole number", s)
				}
				*f(c) = x
				return nil
			}}
	}
	return []setting{
		str("addr", "ADDR", "listen address host:port (port 0 picks a free one)", func(c *Config) *string { return &c.Addr }),
		str("data", "DATA_DIR", "data folder (holds realm.db and realm.key), created with mode 0700", func(c *Config) *string { return &c.DataDir }),
		str("issuer-key", "ISSUER_KEY", "parleyd's token public key (base64 of 32 bytes): the realm accepts only tokens it signed", func(c *Config) *string { return &c.IssuerKey }),
		str("tls-cert", "TLS_CERT", "TLS certificate file (PEM); serve HTTPS with --tls-key", func(c *Config) *string { return &c.TLSCert }),
		str("tls-key", "TLS_KEY", "TLS private key file (PEM)", func(c *Config) *string { return &c.TLSKey }),
		{"insecure-http", "INSECURE_HTTP", "allow plain HTTP on a non-loopback address (behind a TLS proxy)",
			func(c *Config) string { return strconv.FormatBool(c.InsecureHTTP) },
			func(c *Config, s string) error {
				b, err := strconv.ParseBool(s)
				if err != nil {
					return fmt.Errorf("%q is not true or false", s)
				}
				c.InsecureHTTP = b
				return nil
			}},
		str("log-level", "LOG_LEVEL", "debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }),
		str("log-format", "LOG_FORMAT", "text or json", func(c *Config) *string { return &c.LogFormat }),
		dur("max-token-ttl", "MAX_TOKEN_TTL", "longest token lifetime accepted", func(c *Config) *time.Duration { return &c.MaxTokenTTL }),
		num("guesses-per-hour", "GUESSES_PER_HOUR", "recovery attempts per hour per handle", func(c *Config) *float64 { return &c.GuessesPerHour }),
		{"guess-burst", "GUESS_BURST", "recovery attempt burst per handle",
			func(c *Config) string { return strconv.Itoa(c.GuessBurst) }, intSetter(func(c *Config) *int { return &c.GuessBurst })},
		num("requests-per-minute", "REQUESTS_PER_MINUTE", "requests per minute per handle", func(c *Config) *float64 { return &c.RequestsPerMinute }),
		{"request-burst", "REQUEST_BURST", "request burst per handle",
			func(c *Config) string { return strconv.Itoa(c.RequestBurst) }, intSetter(func(c *Config) *int { return &c.RequestBurst })},
		{"max-allowed-guesses", "MAX_ALLOWED_GUESSES", "most wrong PINs a registration may allow",
			func(c *Config) string { return strconv.Itoa(c.MaxAllowedGuesses) }, intSetter(func(c *Config) *int { return &c.MaxAllowedGuesses })},
		integer("max-body-bytes", "MAX_BODY_BYTES", "largest request body", func(c *Config) *int64 { return &c.MaxBodyBytes }),
		dur("shutdown-timeout", "SHUTDOWN_TIMEOUT", "bound on graceful shutdown", func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
	}
}

func intSetter(f func(*Config) *int) func(*Config, string) error {
	return func(c *Config, s string) error {
		x, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		*f(c) = x
		return nil
	}
}

// textValue keeps a flag's text; Load applies the flags that were set.
type textValue struct {
	s      string
	isBool bool
}

func (v *textValue) String() string     { return v.s }
func (v *textValue) Set(s string) error { v.s = s; return nil }
func (v *textValue) IsBoolFlag() bool   { return v.isBool }

// Load builds the configuration from the defaults, the environment (looked
// up with getenv) and args (flags, without the program name), and
// validates it. Flag errors and -h print to output.
func Load(args []string, getenv func(string) (string, bool), output io.Writer) (Config, error) {
	fs := flag.NewFlagSet("parley-realm", flag.ContinueOnError)
	fs.SetOutput(output)
	def := Defaults()
	values := map[string]*textValue{}
	for _, s := range settings() {
		v := &textValue{s: s.get(&def), isBool: s.flag == "insecure-http"}
		values[s.flag] = v
		fs.Var(v, s.flag, s.usage+" ("+EnvPrefix+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected argument %q", ErrInvalid, fs.Arg(0))
	}
	c := Defaults()
	for _, s := range settings() {
		if v, ok := getenv(EnvPrefix + s.env); ok {
			if err := s.set(&c, v); err != nil {
				return Config{}, fmt.Errorf("%w: %s%s: %w", ErrInvalid, EnvPrefix, s.env, err)
			}
		}
	}
	var flagErr error
	fs.Visit(func(f *flag.Flag) {
		for _, s := range settings() {
			if s.flag == f.Name && flagErr == nil {
				if err := s.set(&c, values[s.flag].s); err != nil {
					flagErr = fmt.Errorf("%w: --%s: %w", ErrInvalid, s.flag, err)
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

// JSON returns the configuration as indented JSON.
func (c Config) JSON() []byte {
	type plain Config
	b, _ := json.MarshalIndent(struct {
		plain
		MaxTokenTTL     string `json:"max_token_ttl"`
		ShutdownTimeout string `json:"shutdown_timeout"`
	}{plain(c), c.MaxTokenTTL.String(), c.ShutdownTimeout.String()}, "", "  ")
	return append(b, '\n')
}

// Issuer decodes IssuerKey.
func (c Config) Issuer() (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(c.IssuerKey)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: issuer_key must be the base64 of a 32-byte Ed25519 public key (parleyd's token key)", ErrInvalid)
	}
	return ed25519.PublicKey(b), nil
}

// Validate checks every value.
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
	if _, err := c.Issuer(); err != nil {
		return err
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
	if c.MaxTokenTTL < time.Second || c.MaxTokenTTL > 24*time.Hour {
		return bad("max_token_ttl %s is outside 1s..24h", c.MaxTokenTTL)
	}
	if !(c.GuessesPerHour > 0 && c.GuessesPerHour <= 1e6) || c.GuessBurst < 1 || c.GuessBurst > 1e6 {
		return bad("guesses_per_hour %v and guess_burst %d must be above 0 (at most 1000000)", c.GuessesPerHour, c.GuessBurst)
	}
	if !(c.RequestsPerMinute > 0 && c.RequestsPerMinute <= 1e6) || c.RequestBurst < 1 || c.RequestBurst > 1e6 {
		return bad("requests_per_minute %v and request_burst %d must be above 0 (at most 1000000)", c.RequestsPerMinute, c.RequestBurst)
	}
	if c.MaxAllowedGuesses < 1 || c.MaxAllowedGuesses > 100 {
		return bad("max_allowed_guesses %d is outside 1..100", c.MaxAllowedGuesses)
	}
	if c.MaxBodyBytes < 1<<10 || c.MaxBodyBytes > 16<<20 {
		return bad("max_body_bytes %d is outside 1 KiB..16 MiB", c.MaxBodyBytes)
	}
	if c.ShutdownTimeout < 0 || c.ShutdownTimeout > time.Hour {
		return bad("shutdown_timeout %s is outside 0..1h", c.ShutdownTimeout)
	}
	return nil
}

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
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
